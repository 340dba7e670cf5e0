// SPDX-License-Identifier: GPL-2.0
//! `unlinkd run`: the daemon loop.
//!
//! 1. Drain the device: read every record available, append the new ones
//!    (by key) to the journal and `fsync`, then write the acknowledgements
//!    (a crash between the two means redelivery, recognised by key).
//! 2. For every pending record, the members of its viods `0..W-1` (from
//!    the control file's `list`) each get the key in an UNLINK batch of at
//!    most 256 keys; a member that does not answer is retried with an
//!    exponential back-off (from the timeout, doubled up to
//!    `--max-backoff`), without holding up the others.
//! 3. A record all of whose members acknowledged is marked done in the
//!    journal; the journal is compacted when everything is done (not
//!    while it has corrupt regions: they stay as evidence).
//!
//! At start the journal is replayed: its pending records are carried out
//! before (and beside) new ones. SIGTERM/SIGINT stop the loop between two
//! steps; nothing in flight is lost (it is in the journal).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use log::{info, warn};
use nfsp_proto::unlink::{UnlinkAck, UnlinkRecord, ACK_LEN, RECORD_LEN};
use nfsp_proto::wire::MAX_UNLINK_KEYS;
use nfsp_proto::FileKey;
use unlinkd::client::{Client, SharedKeys};
use unlinkd::journal::Journal;
use unlinkd::keys::KeyArgs;
use unlinkd::members::{self, Viods};

/// Arguments of `run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The module's deletion device.
    #[arg(long, value_name = "PATH", default_value = unlinkd::DEFAULT_DEVICE)]
    pub device: PathBuf,
    /// The module's control file (viod membership).
    #[arg(long, value_name = "PATH", default_value = unlinkd::DEFAULT_CONTROL)]
    pub control: PathBuf,
    /// The durable journal (created with its directory if missing).
    #[arg(long, value_name = "PATH", default_value = unlinkd::DEFAULT_JOURNAL)]
    pub journal: PathBuf,
    /// Time to wait for an iod's answer, in milliseconds (first try).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub timeout_ms: u64,
    /// Longest wait between two tries to a silent iod, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub max_backoff_ms: u64,
    /// How often the device is polled when idle, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub poll_ms: u64,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Per-iod retry state.
struct Backoff {
    delay: Duration,
    next: Instant,
}

struct Daemon {
    journal: Journal,
    dev: File,
    control: PathBuf,
    client: Client,
    /// Pending key → members still to acknowledge (resolved records only).
    todo: HashMap<FileKey, BTreeSet<SocketAddr>>,
    viods: Option<(Viods, Instant)>,
    backoff: HashMap<SocketAddr, Backoff>,
    max_backoff: Duration,
    warned: HashSet<String>,
    files_done: u64,
    local_removed: u64,
}

impl Args {
    /// Run until SIGTERM/SIGINT.
    pub fn run(&self) -> anyhow::Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
        }
        let keys = SharedKeys::new(self.keys.load()?);
        let reload = self.keys.reloader(keys.clone())?;
        if let Some(dir) = self.journal.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let journal = Journal::open(&self.journal)
            .with_context(|| format!("journal {}", self.journal.display()))?;
        let st = journal.state();
        info!(
            "journal {}: {} pending deletion(s), {} bytes",
            self.journal.display(),
            st.pending.len(),
            st.pending_bytes()
        );
        if st.corrupt > 0 {
            log::error!(
                "journal {}: {} corrupt region(s), {} bytes from byte {}, skipped (the entries \
                 around them are kept); the journal is not compacted while they are in it",
                self.journal.display(),
                st.corrupt,
                st.corrupt_bytes,
                st.first_corrupt.unwrap_or(0)
            );
        }
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.device)
            .with_context(|| {
                format!("opening {} (is nfsp_knfsd loaded?)", self.device.display())
            })?;
        let timeout = Duration::from_millis(self.timeout_ms.max(1));
        let mut d = Daemon {
            journal,
            dev,
            control: self.control.clone(),
            client: Client::new(keys, timeout, 1).context("iod client")?,
            todo: HashMap::new(),
            viods: None,
            backoff: HashMap::new(),
            max_backoff: Duration::from_millis(self.max_backoff_ms.max(self.timeout_ms)),
            warned: HashSet::new(),
            files_done: 0,
            local_removed: 0,
        };
        // The line scripts wait for.
        println!("unlinkd running");
        let poll = Duration::from_millis(self.poll_ms.max(1));
        while !stop.load(Ordering::Relaxed) {
            reload.poll();
            let got = d.drain()?;
            let worked = d.unlink_round(&stop)?;
            if d.journal.wants_compaction() {
                d.journal.compact().context("compacting the journal")?;
                log::debug!("journal compacted");
            } else if d.journal.compaction_held_back() {
                let st = d.journal.state();
                let msg = format!(
                    "journal {}: not compacted: {} corrupt region(s) ({} bytes) kept as \
                     evidence; it grows until replaced by hand",
                    self.journal.display(),
                    st.corrupt,
                    st.corrupt_bytes
                );
                d.warn_once(msg);
            }
            if got == 0 && !worked {
                std::thread::sleep(poll);
            }
        }
        let st = d.journal.state();
        info!(
            "stopping: {} file(s) deleted in this run ({} local files removed), {} pending",
            d.files_done,
            d.local_removed,
            st.pending.len()
        );
        Ok(())
    }
}

/// Coalesce sequence numbers into acknowledgement ranges.
fn ack_ranges(mut seqs: Vec<u64>) -> Vec<UnlinkAck> {
    seqs.sort_unstable();
    seqs.dedup();
    let mut out: Vec<UnlinkAck> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some(a) if a.last.checked_add(1) == Some(s) => a.last = s,
            _ => out.push(UnlinkAck { first: s, last: s }),
        }
    }
    out
}

impl Daemon {
    fn warn_once(&mut self, msg: String) {
        if self.warned.insert(msg.clone()) {
            warn!("{msg}");
        } else {
            log::debug!("{msg}");
        }
    }

    /// Read every available record, journal the new ones, acknowledge all.
    fn drain(&mut self) -> anyhow::Result<usize> {
        let mut total = 0;
        let mut buf = vec![0u8; RECORD_LEN * 256];
        loop {
            let n = match self.dev.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("reading the deletion device"),
            };
            if n == 0 {
                return Ok(total);
            }
            let mut recs = Vec::new();
            for chunk in buf[..n].chunks(RECORD_LEN) {
                match UnlinkRecord::decode(chunk) {
                    Ok(r) => recs.push(r),
                    Err(e) => warn!("malformed deletion record skipped: {e}"),
                }
            }
            let new = self.journal.add_pending(&recs).context("journal append")?;
            // Durable: acknowledge.
            let acks = ack_ranges(recs.iter().map(|r| r.seq).collect());
            let mut out = vec![0u8; acks.len() * ACK_LEN];
            for (a, c) in acks.iter().zip(out.chunks_exact_mut(ACK_LEN)) {
                a.encode(c).map_err(|e| anyhow::anyhow!("ack: {e}"))?;
            }
            if !out.is_empty() {
                self.dev
                    .write_all(&out)
                    .context("acknowledging to the deletion device")?;
            }
            log::debug!("{} record(s) read, {new} new", recs.len());
            total += recs.len();
        }
    }

    /// Fresh membership (at most 2 s old).
    fn viods(&mut self) -> Option<Viods> {
        if let Some((v, at)) = &self.viods {
            if at.elapsed() < Duration::from_secs(2) {
                return Some(v.clone());
            }
        }
        match members::read(&self.control) {
            Ok(v) => {
                self.viods = Some((v.clone(), Instant::now()));
                Some(v)
            }
            Err(e) => {
                self.warn_once(format!("cannot read the viods: {e}"));
                None
            }
        }
    }

    /// Send UNLINK batches to every member due; true when anything changed.
    fn unlink_round(&mut self, stop: &AtomicBool) -> anyhow::Result<bool> {
        let pending: Vec<UnlinkRecord> = self.journal.state().pending.values().copied().collect();
        if pending.is_empty() {
            return Ok(false);
        }
        self.todo
            .retain(|k, _| self.journal.state().pending.contains_key(k));
        if pending.iter().any(|r| !self.todo.contains_key(&r.key)) {
            if let Some(v) = self.viods() {
                for r in &pending {
                    if self.todo.contains_key(&r.key) {
                        continue;
                    }
                    match members::members_of(&v, r.layout.width) {
                        Ok(m) => {
                            self.todo
                                .insert(r.key, m.into_iter().map(|(_, a)| a).collect());
                        }
                        Err(viod) => self.warn_once(format!(
                            "viod {viod} has no member: deletions of files {} viods wide wait",
                            r.layout.width
                        )),
                    }
                }
            }
        }
        let mut by_addr: BTreeMap<SocketAddr, Vec<FileKey>> = BTreeMap::new();
        for (k, addrs) in &self.todo {
            for a in addrs {
                by_addr.entry(*a).or_default().push(*k);
            }
        }
        let now = Instant::now();
        let mut progress = false;
        for (addr, mut keys) in by_addr {
            if self.backoff.get(&addr).is_some_and(|b| b.next > now) {
                continue;
            }
            keys.sort_by(|a, b| a.list_cmp(b));
            for chunk in keys.chunks(MAX_UNLINK_KEYS) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match self.client.unlink(addr, chunk) {
                    Ok(removed) => {
                        self.local_removed += removed;
                        for k in chunk {
                            if let Some(s) = self.todo.get_mut(k) {
                                s.remove(&addr);
                            }
                        }
                        if self.backoff.remove(&addr).is_some() {
                            info!("{addr} answers again");
                        }
                        progress = true;
                    }
                    Err(e) => {
                        let first = self.client.timeout;
                        let b = self.backoff.entry(addr).or_insert(Backoff {
                            delay: first / 2,
                            next: now,
                        });
                        b.delay = (b.delay * 2).min(self.max_backoff).max(first);
                        b.next = Instant::now() + b.delay;
                        warn!(
                            "UNLINK of {} key(s) on {addr}: {e}; retrying in {} ms",
                            chunk.len(),
                            b.delay.as_millis()
                        );
                        break;
                    }
                }
            }
        }
        let finished: Vec<FileKey> = self
            .todo
            .iter()
            .filter(|(_, s)| s.is_empty())
            .map(|(k, _)| *k)
            .collect();
        if !finished.is_empty() {
            self.journal
                .mark_done(&finished)
                .context("journal append")?;
            for k in &finished {
                self.todo.remove(k);
            }
            self.files_done += finished.len() as u64;
            let st = self.journal.state();
            info!(
                "{} file(s) deleted ({} in this run), {} pending",
                finished.len(),
                self.files_done,
                st.pending.len()
            );
        }
        Ok(progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_acks() {
        let a = ack_ranges(vec![5, 3, 4, 9, 10, 4, 12]);
        assert_eq!(
            a,
            vec![
                UnlinkAck { first: 3, last: 5 },
                UnlinkAck { first: 9, last: 10 },
                UnlinkAck {
                    first: 12,
                    last: 12
                },
            ]
        );
        assert!(ack_ranges(vec![]).is_empty());
        assert_eq!(
            ack_ranges(vec![u64::MAX, u64::MAX - 1]),
            vec![UnlinkAck {
                first: u64::MAX - 1,
                last: u64::MAX
            }]
        );
    }
}
