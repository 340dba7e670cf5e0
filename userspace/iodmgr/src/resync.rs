// SPDX-License-Identifier: GPL-2.0
//! Re-sync: make a returning member (`target`, already in state `resync`,
//! so it receives every new write) hold the same data as an up member of
//! its viod (`source`), over the iod protocol.
//!
//! Round 0 LISTs both members (page by page) and plans: keys on the source
//! are synced (TRUNCATE the target to the source's local length when it
//! differs — which creates a missing file — then, in chunks of at most
//! 60 KiB, READ the source (relay), READ the target, WRITE to the target
//! alone where they differ); keys only on the target are UNLINKed when
//! older than the re-sync (or when seen there in two rounds in a row:
//! a newer one may be a creation still travelling along the chain).
//!
//! Client writes run meanwhile, through both members in the kernel's
//! chain order, so a chunk we copied may have been overtaken by a newer
//! write on the target before our copy landed. Every chunk we wrote (every
//! key we truncated) is therefore *dirty* and checked again in the next
//! round (after a pause longer than a write's retries), with fresh LISTs;
//! the re-sync is complete after a round that changes nothing. Only then
//! does the daemon set the member `up`: it never serves stale data.
//!
//! Lengths come from the iods' LIST answers and are believed only up to
//! [`Resync::max_file_size`]: a longer file is logged as an error, counted
//! and skipped (the rest is synced). Offsets are walked lazily, so a
//! length never sizes an allocation; a LIST answer that does not move
//! past its cursor fails the re-sync (no endless listing).
//!
//! Memory: both listings (56 bytes per file), the dirty set (one offset
//! per chunk written) and two chunk buffers, reused.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nfsp_proto::wire::{ListEntry, MAX_DATA_PER_MSG, MAX_UNLINK_KEYS};
use nfsp_proto::FileKey;
use unlinkd::client::{Client, ClientError};

/// Chunk size of the copy (one message).
pub const CHUNK: u64 = MAX_DATA_PER_MSG as u64;
/// Default of [`Resync::max_file_size`]: 1 TiB of local data per file.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 40;

/// Why a re-sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    /// An iod request failed.
    #[error(transparent)]
    Iod(#[from] ClientError),
    /// Told to stop.
    #[error("aborted")]
    Aborted,
    /// Still changing after every round.
    #[error("not converged after {0} rounds (writes keep overtaking the copy)")]
    NotConverged(u32),
}

/// One key to bring in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncKey {
    /// The file.
    pub key: FileKey,
    /// Its local length on the source.
    pub len: u64,
    /// Its local length on the target (`None`: missing there).
    pub target_len: Option<u64>,
}

/// What a round must do, from the two listings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Keys of the source, in listing order.
    pub sync: Vec<SyncKey>,
    /// Keys only on the target, to remove.
    pub delete: Vec<FileKey>,
    /// Keys only on the target, too new to remove yet.
    pub young: Vec<FileKey>,
}

/// Plan a round: `source`/`target` = the members' listings; target-only
/// keys modified before `older_than` (Unix seconds) or in `seen` (target-
/// only in the previous round) are deleted, the others are young.
pub fn plan(
    source: &[ListEntry],
    target: &[ListEntry],
    older_than: u64,
    seen: &HashSet<FileKey>,
) -> Plan {
    let t: HashMap<FileKey, &ListEntry> = target.iter().map(|e| (e.key, e)).collect();
    let s: HashSet<FileKey> = source.iter().map(|e| e.key).collect();
    let mut p = Plan {
        sync: source
            .iter()
            .map(|e| SyncKey {
                key: e.key,
                len: e.len,
                target_len: t.get(&e.key).map(|x| x.len),
            })
            .collect(),
        ..Plan::default()
    };
    for e in target.iter().filter(|e| !s.contains(&e.key)) {
        if e.mtime_s < older_than || seen.contains(&e.key) {
            p.delete.push(e.key);
        } else {
            p.young.push(e.key);
        }
    }
    p
}

/// Chunks of a key to check.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dirty {
    Whole,
    Chunks(BTreeSet<u64>),
}

/// The chunk offsets of `which` in a key `len` bytes long, lazily: `len`
/// is what an iod says, never a size to allocate.
fn offsets(which: Dirty, len: u64) -> Box<dyn Iterator<Item = u64>> {
    match which {
        Dirty::Whole => Box::new((0..len).step_by(CHUNK as usize)),
        Dirty::Chunks(c) => Box::new(c.into_iter().take_while(move |o| *o < len)),
    }
}

/// What a re-sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Keys of the source.
    pub files: u64,
    /// Bytes written to the target.
    pub copied: u64,
    /// Bytes compared (read from the source).
    pub compared: u64,
    /// Keys removed from the target.
    pub deleted: u64,
    /// Keys truncated (or created) on the target.
    pub truncated: u64,
    /// Keys skipped: longer on the source than [`Resync::max_file_size`].
    pub too_big: u64,
    /// Rounds made.
    pub rounds: u32,
    /// Time taken.
    pub elapsed: Duration,
}

impl Report {
    /// Copy throughput in MB/s (10^6 bytes: written + compared).
    pub fn mb_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64().max(1e-6);
        self.compared as f64 / 1e6 / s
    }
}

/// A re-sync job.
pub struct Resync {
    /// The iod client (its own socket).
    pub client: Client,
    /// Up member to copy from.
    pub source: SocketAddr,
    /// Returning member.
    pub target: SocketAddr,
    /// Set to stop between two chunks.
    pub abort: Arc<AtomicBool>,
    /// Bytes written to the target so far (for the metrics).
    pub progress: Arc<AtomicU64>,
    /// Pause between rounds (longer than a client write's retries).
    pub pause: Duration,
    /// Most rounds.
    pub max_rounds: u32,
    /// Longest local file believed (bytes); longer ones are skipped.
    pub max_file_size: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Resync {
    fn list(&mut self, to: SocketAddr) -> Result<Vec<ListEntry>, ResyncError> {
        let mut all = Vec::new();
        self.client
            .list_all(to, |page| all.extend_from_slice(page))?;
        Ok(all)
    }

    fn check(&self) -> Result<(), ResyncError> {
        if self.abort.load(Ordering::Relaxed) {
            Err(ResyncError::Aborted)
        } else {
            Ok(())
        }
    }

    /// Run to completion.
    pub fn run(mut self) -> Result<Report, ResyncError> {
        let start = Instant::now();
        // Target-only files older than this are leftovers (a second of
        // margin for the clocks' granularity).
        let older_than = unix_now().saturating_sub(1);
        let mut r = Report::default();
        let mut dirty: BTreeMap<FileKey, Dirty> = BTreeMap::new();
        let mut seen: HashSet<FileKey> = HashSet::new();
        let mut too_big: HashSet<FileKey> = HashSet::new();
        let (mut sbuf, mut tbuf) = (vec![0u8; CHUNK as usize], vec![0u8; CHUNK as usize]);
        for round in 0..self.max_rounds {
            self.check()?;
            if round > 0 {
                std::thread::sleep(self.pause);
            }
            r.rounds = round + 1;
            let src = self.list(self.source)?;
            let tgt = self.list(self.target)?;
            let p = plan(&src, &tgt, older_than, &seen);
            if round == 0 {
                r.files = p.sync.len() as u64;
            }
            let mut changed = 0u64;
            let mut next: BTreeMap<FileKey, Dirty> = BTreeMap::new();
            for k in &p.sync {
                self.check()?;
                if k.len > self.max_file_size {
                    if too_big.insert(k.key) {
                        log::error!(
                            "re-sync {} <- {}: file {:016x}-{:016x}-{:016x}: the source lists \
                             {} local bytes, more than the {} believed (--max-file-size): skipped",
                            self.target,
                            self.source,
                            k.key.export,
                            k.key.inode,
                            k.key.seed,
                            k.len,
                            self.max_file_size
                        );
                    }
                    r.too_big = too_big.len() as u64;
                    continue;
                }
                let mut which = if round == 0 {
                    Some(Dirty::Whole)
                } else {
                    dirty.remove(&k.key)
                };
                // Length first: creates a missing file, cuts or extends.
                let mut known = k.target_len.unwrap_or(0);
                if k.target_len != Some(k.len) {
                    self.client.truncate(self.target, k.key, k.len)?;
                    r.truncated += 1;
                    changed += 1;
                    known = known.min(k.len);
                    which = Some(Dirty::Whole);
                    next.insert(k.key, Dirty::Whole);
                }
                let Some(which) = which else {
                    continue;
                };
                for off in offsets(which, k.len) {
                    self.check()?;
                    let n = (k.len - off).min(CHUNK) as usize;
                    let s = &mut sbuf[..n];
                    self.client.read(self.source, k.key, off, s)?;
                    r.compared += n as u64;
                    let t = &mut tbuf[..n];
                    if off >= known {
                        // Past the target's old end: zeros.
                        t.fill(0);
                    } else {
                        self.client.read(self.target, k.key, off, t)?;
                    }
                    if s != t {
                        self.client.write(self.target, k.key, off, s)?;
                        r.copied += n as u64;
                        self.progress.fetch_add(n as u64, Ordering::Relaxed);
                        changed += 1;
                        match next.entry(k.key).or_insert(Dirty::Chunks(BTreeSet::new())) {
                            Dirty::Chunks(c) => {
                                c.insert(off);
                            }
                            Dirty::Whole => {}
                        }
                    }
                }
            }
            for chunk in p.delete.chunks(MAX_UNLINK_KEYS) {
                self.check()?;
                self.client.unlink(self.target, chunk)?;
                r.deleted += chunk.len() as u64;
                changed += chunk.len() as u64;
            }
            seen = p.young.iter().copied().collect();
            // Dirty keys the source no longer has are gone (deleted): the
            // listings of the next round settle them.
            dirty = next;
            log::debug!(
                "re-sync {} <- {} round {}: {changed} change(s), {} young",
                self.target,
                self.source,
                round + 1,
                seen.len()
            );
            if changed == 0 && seen.is_empty() && dirty.is_empty() {
                r.elapsed = start.elapsed();
                return Ok(r);
            }
        }
        Err(ResyncError::NotConverged(self.max_rounds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(inode: u64, len: u64, mtime_s: u64) -> ListEntry {
        ListEntry {
            key: FileKey::new(1, inode, 7),
            len,
            mtime_s,
        }
    }

    #[test]
    fn plans_from_two_listings() {
        let src = [e(1, 100, 50), e(2, 200, 50), e(3, 0, 50)];
        let tgt = [e(2, 150, 40), e(3, 0, 40), e(4, 10, 10), e(5, 10, 99)];
        let p = plan(&src, &tgt, 60, &HashSet::new());
        assert_eq!(
            p.sync,
            vec![
                SyncKey {
                    key: FileKey::new(1, 1, 7),
                    len: 100,
                    target_len: None
                },
                SyncKey {
                    key: FileKey::new(1, 2, 7),
                    len: 200,
                    target_len: Some(150)
                },
                SyncKey {
                    key: FileKey::new(1, 3, 7),
                    len: 0,
                    target_len: Some(0)
                },
            ]
        );
        // 4 is an old leftover; 5 is newer than the re-sync: maybe a
        // creation on its way along the chain.
        assert_eq!(p.delete, vec![FileKey::new(1, 4, 7)]);
        assert_eq!(p.young, vec![FileKey::new(1, 5, 7)]);
        // Seen young in the previous round and still target-only: removed.
        let seen: HashSet<FileKey> = [FileKey::new(1, 5, 7)].into();
        let p = plan(&src, &tgt, 60, &seen);
        assert_eq!(p.delete, vec![FileKey::new(1, 4, 7), FileKey::new(1, 5, 7)]);
        assert!(p.young.is_empty());
        // Identical listings: nothing to delete, every key to check.
        let p = plan(&src, &src, 60, &HashSet::new());
        assert!(p.delete.is_empty() && p.young.is_empty());
        assert!(p.sync.iter().all(|k| k.target_len == Some(k.len)));
        assert_eq!(plan(&[], &[], 0, &HashSet::new()), Plan::default());
    }

    #[test]
    fn offsets_are_lazy() {
        // A forged length: the first offsets come at once, nothing sized.
        let o: Vec<u64> = offsets(Dirty::Whole, 1 << 62).take(3).collect();
        assert_eq!(o, [0, CHUNK, 2 * CHUNK]);
        assert_eq!(offsets(Dirty::Whole, u64::MAX).nth(2), Some(2 * CHUNK));
        assert_eq!(offsets(Dirty::Whole, 0).count(), 0);
        assert_eq!(offsets(Dirty::Whole, CHUNK).count(), 1);
        assert_eq!(offsets(Dirty::Whole, CHUNK + 1).count(), 2);
        let c: BTreeSet<u64> = [0, CHUNK, 5 * CHUNK].into();
        let o: Vec<u64> = offsets(Dirty::Chunks(c), 2 * CHUNK).collect();
        assert_eq!(o, [0, CHUNK], "chunks past the end are gone");
    }

    #[test]
    fn throughput() {
        let r = Report {
            compared: 10_000_000,
            elapsed: Duration::from_secs(2),
            ..Report::default()
        };
        assert!((r.mb_per_s() - 5.0).abs() < 1e-9);
    }
}
