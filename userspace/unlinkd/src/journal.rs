// SPDX-License-Identifier: GPL-2.0
//! The durable journal of deletions (format: `nfsp_proto::journal`).
//!
//! [`Journal`] is the daemon's writer: it holds an exclusive `flock` on the
//! file, appends entries and `fsync`s before returning, truncates a partial
//! last entry (a crash in the middle of an append) when it opens the file,
//! and compacts by writing the pending entries to `PATH.tmp`, `fsync`,
//! `rename` over `PATH`, `fsync` of the directory. [`read_state`] replays a
//! journal read-only (for `unlinkd status` and `iodctl fsck`), whether or
//! not a daemon runs.
//!
//! Replay does not trust the 64-byte grid: after an entry that does not
//! decode ([`scan`]), it looks for the next valid entry (magic and CRC)
//! byte by byte, so a deleted, inserted or overwritten byte costs the
//! entries it touches and no others. Such a region is counted, logged and
//! keeps the journal from being compacted (the file is the evidence).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nfsp_proto::journal::{Entry, ENTRY_LEN};
use nfsp_proto::{FileKey, ProtoError, UnlinkRecord};

/// Journal errors.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// I/O on the journal file.
    #[error("{op} {path}: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// Path.
        path: String,
        /// Cause.
        source: io::Error,
    },
    /// Another process holds the journal.
    #[error("{0} is in use by another unlinkd")]
    Locked(String),
    /// An entry could not be encoded (an invalid record).
    #[error("cannot encode a journal entry: {0}")]
    Encode(nfsp_proto::ProtoError),
    /// Compaction refused: it would rewrite corrupt regions away.
    #[error("{path} has {regions} corrupt region(s) ({bytes} bytes): not compacted")]
    Corrupt {
        /// Path.
        path: String,
        /// Corrupt regions.
        regions: usize,
        /// Their bytes.
        bytes: usize,
    },
}

fn io_err<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        op,
        path: p.display().to_string(),
        source,
    }
}

/// One step of a [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// A valid entry starting at byte `at`.
    Entry {
        /// Offset in the image.
        at: usize,
        /// The entry.
        entry: Entry,
    },
    /// Damage at byte `at`: `len` bytes where no valid entry starts; the
    /// next valid entry is at `next` (the end of the image if none). With
    /// bytes deleted, that entry can start inside the previous one
    /// (`len` = 0, `next` < `at`): both decoded, both are kept.
    Corrupt {
        /// Offset of the first byte that is not a valid entry.
        at: usize,
        /// Bytes skipped.
        len: usize,
        /// Where the scan goes on.
        next: usize,
        /// Why the entry at `at` did not decode.
        error: ProtoError,
    },
}

/// The entries and damaged regions of a journal image, in order; a
/// partial entry at the end (a torn append: fewer than [`ENTRY_LEN`] bytes
/// after the last valid entry, with no valid entry in them) is left out,
/// see [`Scan::tail`].
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Start of the entry just returned (the next one can overlap it).
    prev: Option<usize>,
    tail: usize,
}

/// Scan a journal image (a whole file).
pub fn scan(buf: &[u8]) -> Scan<'_> {
    Scan {
        buf,
        pos: 0,
        prev: None,
        tail: 0,
    }
}

impl Scan<'_> {
    fn decode(&self, at: usize) -> Result<Entry, ProtoError> {
        let chunk = at
            .checked_add(ENTRY_LEN)
            .and_then(|end| self.buf.get(at..end))
            .ok_or(ProtoError::Truncated)?;
        Entry::decode(chunk)
    }

    /// Length of the partial entry at the end, once the scan is over.
    pub fn tail(&self) -> usize {
        self.tail
    }
}

impl Iterator for Scan<'_> {
    type Item = Scanned;
    fn next(&mut self) -> Option<Scanned> {
        let len = self.buf.len();
        if self.pos >= len {
            return None;
        }
        let at = self.pos;
        let error = match self.decode(at) {
            Ok(entry) => {
                self.prev = Some(at);
                self.pos = at + ENTRY_LEN;
                return Some(Scanned::Entry { at, entry });
            }
            Err(e) => e,
        };
        // Resynchronise: the first offset where a valid entry starts,
        // from just after the previous entry's start (a deletion can pull
        // the next entry into the previous one's last bytes).
        let from = self.prev.take().map_or(at + 1, |p| p + 1);
        let found = (from..=len.saturating_sub(ENTRY_LEN)).find(|&q| self.decode(q).is_ok());
        match found {
            Some(next) => {
                self.pos = next;
                Some(Scanned::Corrupt {
                    at,
                    len: next.saturating_sub(at),
                    next,
                    error,
                })
            }
            None if len - at < ENTRY_LEN => {
                self.tail = len - at;
                self.pos = len;
                None
            }
            None => {
                self.pos = len;
                Some(Scanned::Corrupt {
                    at,
                    len: len - at,
                    next: len,
                    error,
                })
            }
        }
    }
}

/// Corrupt regions logged one by one; beyond, only the totals.
const LOGGED_REGIONS: usize = 16;

/// What a journal says after replay.
#[derive(Debug, Default, Clone)]
pub struct State {
    /// Deletions still to carry out, by key.
    pub pending: BTreeMap<FileKey, UnlinkRecord>,
    /// Keys done (since the last compaction).
    pub done: HashSet<FileKey>,
    /// Corrupt regions (each a run of bytes holding no valid entry, or
    /// an entry overlapping the previous one), skipped.
    pub corrupt: usize,
    /// Bytes in the corrupt regions.
    pub corrupt_bytes: usize,
    /// Offset of the first corrupt region.
    pub first_corrupt: Option<usize>,
    /// Valid entries read.
    pub entries: usize,
    /// Length of a partial last entry (a torn append), ignored.
    pub tail: usize,
}

impl State {
    /// Apply one entry: a pending record (not already pending: the first
    /// one stays), or a done marker.
    pub fn apply(&mut self, e: Entry) {
        self.entries += 1;
        match e {
            Entry::Pending(r) => {
                self.done.remove(&r.key);
                self.pending.entry(r.key).or_insert(r);
            }
            Entry::Done { key, .. } => {
                self.pending.remove(&key);
                self.done.insert(key);
            }
        }
    }

    /// Replay a journal image, resynchronising after corrupt regions (a
    /// partial last entry is ignored).
    pub fn replay(buf: &[u8]) -> State {
        let mut st = State::default();
        let mut it = scan(buf);
        for s in it.by_ref() {
            match s {
                Scanned::Entry { entry, .. } => st.apply(entry),
                Scanned::Corrupt {
                    at,
                    len,
                    next,
                    error,
                } => {
                    st.corrupt += 1;
                    st.corrupt_bytes += len;
                    st.first_corrupt.get_or_insert(at);
                    if st.corrupt <= LOGGED_REGIONS {
                        log::warn!(
                            "journal: corrupt region at byte {at}, {len} byte(s) ({error}); \
                             next valid entry at byte {next}"
                        );
                    }
                }
            }
        }
        st.tail = it.tail();
        if st.corrupt > LOGGED_REGIONS {
            log::warn!(
                "journal: {} corrupt regions in all ({} bytes), the first {LOGGED_REGIONS} logged",
                st.corrupt,
                st.corrupt_bytes
            );
        }
        st
    }

    /// Sum of the real sizes of the pending deletions.
    pub fn pending_bytes(&self) -> u64 {
        self.pending
            .values()
            .fold(0u64, |a, r| a.saturating_add(r.real_size))
    }
}

/// Replay the journal at `path` read-only (missing file = empty).
pub fn read_state(path: &Path) -> Result<State, JournalError> {
    match fs::read(path) {
        Ok(b) => Ok(State::replay(&b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// The daemon's handle on its journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    state: State,
}

fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    // SAFETY: flock on a valid open descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(JournalError::Locked(path.display().to_string()));
        }
        return Err(io_err("flock", path)(e));
    }
    Ok(())
}

fn sync_dir(path: &Path) -> Result<(), JournalError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

impl Journal {
    /// Open (or create) the journal, lock it, replay it and cut a partial
    /// last entry.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err("open", path))?;
        lock(&file, path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(io_err("read", path))?;
        let mut state = State::replay(&buf);
        // Only a torn append after the last valid entry is cut (not the
        // length modulo 64: after a deleted byte that is a valid entry).
        if state.tail != 0 {
            log::warn!(
                "{}: cutting a partial last entry ({} bytes)",
                path.display(),
                state.tail
            );
            file.set_len((buf.len() - state.tail) as u64)
                .map_err(io_err("truncate", path))?;
            file.sync_all().map_err(io_err("fsync", path))?;
            state.tail = 0;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            state,
        })
    }

    /// The replayed state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), JournalError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = vec![0u8; entries.len() * ENTRY_LEN];
        for (e, chunk) in entries.iter().zip(buf.chunks_exact_mut(ENTRY_LEN)) {
            e.encode(chunk).map_err(JournalError::Encode)?;
        }
        self.file
            .write_all(&buf)
            .map_err(io_err("write", &self.path))?;
        self.file.sync_data().map_err(io_err("fsync", &self.path))?;
        for e in entries {
            self.state.apply(*e);
        }
        Ok(())
    }

    /// Make `records` durable as pending, except keys already pending or
    /// done (a redelivery). Returns how many were new. When this returns
    /// Ok, every record passed in may be acknowledged to the kernel.
    pub fn add_pending(&mut self, records: &[UnlinkRecord]) -> Result<usize, JournalError> {
        let mut seen = HashSet::new();
        let new: Vec<Entry> = records
            .iter()
            .filter(|r| {
                !self.state.pending.contains_key(&r.key)
                    && !self.state.done.contains(&r.key)
                    && seen.insert(r.key)
            })
            .map(|r| Entry::Pending(*r))
            .collect();
        self.append(&new)?;
        Ok(new.len())
    }

    /// Mark these pending keys done (durably).
    pub fn mark_done(&mut self, keys: &[FileKey]) -> Result<(), JournalError> {
        let e: Vec<Entry> = keys
            .iter()
            .filter_map(|k| self.state.pending.get(k))
            .map(|r| Entry::Done {
                seq: r.seq,
                key: r.key,
            })
            .collect();
        self.append(&e)
    }

    /// Whether compaction would shrink the file noticeably (everything is
    /// done and the file is not empty, or done entries dominate), whether
    /// or not corruption forbids it.
    fn would_compact(&self) -> bool {
        let done = self.state.entries.saturating_sub(self.state.pending.len());
        (self.state.pending.is_empty() && self.state.entries > 0)
            || (done > 4096 && done > 4 * self.state.pending.len())
    }

    /// Whether to compact now: it would shrink the file noticeably, and
    /// the file has no corrupt region (compaction would erase it).
    pub fn wants_compaction(&self) -> bool {
        self.state.corrupt == 0 && self.would_compact()
    }

    /// Whether compaction is due but held back by corrupt regions.
    pub fn compaction_held_back(&self) -> bool {
        self.state.corrupt > 0 && self.would_compact()
    }

    /// Rewrite the journal with the pending entries only (atomically:
    /// temporary file, fsync, rename, fsync of the directory). The set of
    /// done keys is kept in memory (to recognise redeliveries). Refused
    /// while the journal has corrupt regions.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        if self.state.corrupt > 0 {
            return Err(JournalError::Corrupt {
                path: self.path.display().to_string(),
                regions: self.state.corrupt,
                bytes: self.state.corrupt_bytes,
            });
        }
        let tmp = self.path.with_extension("tmp");
        let mut buf = vec![0u8; self.state.pending.len() * ENTRY_LEN];
        for (r, chunk) in self
            .state
            .pending
            .values()
            .zip(buf.chunks_exact_mut(ENTRY_LEN))
        {
            Entry::Pending(*r)
                .encode(chunk)
                .map_err(JournalError::Encode)?;
        }
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .truncate(false)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        // Locked before it takes the journal's name; a stale PATH.tmp of a
        // crashed compaction is simply overwritten.
        lock(&f, &tmp)?;
        f.set_len(0).map_err(io_err("truncate", &tmp))?;
        f.write_all(&buf).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io_err("rename", &tmp))?;
        sync_dir(&self.path)?;
        self.file = f;
        self.state.entries = self.state.pending.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfsp_proto::StripeLayout;

    fn rec(i: u64) -> UnlinkRecord {
        UnlinkRecord {
            seq: i,
            key: FileKey::new(3, 1000 + i, i * 7),
            real_size: i * 100,
            layout: StripeLayout::new(65536, 4, (i % 4) as u32).unwrap(),
        }
    }

    #[test]
    fn write_replay_compact() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let mut j = Journal::open(&p).unwrap();
        assert_eq!(j.add_pending(&[rec(1), rec(2), rec(3)]).unwrap(), 3);
        // redelivery (same keys, new seqs after a module reload) is ignored
        let mut again = rec(2);
        again.seq = 99;
        assert_eq!(j.add_pending(&[again, rec(2)]).unwrap(), 0);
        j.mark_done(&[rec(1).key]).unwrap();
        assert!(matches!(Journal::open(&p), Err(JournalError::Locked(_))));
        let st = read_state(&p).unwrap();
        assert_eq!(st.pending.len(), 2);
        assert_eq!(st.pending_bytes(), 500);
        assert_eq!(st.pending[&rec(2).key].seq, 2);
        assert!(st.done.contains(&rec(1).key));
        // a done key redelivered is not pending again
        assert_eq!(j.add_pending(&[rec(1)]).unwrap(), 0);
        assert!(!j.wants_compaction());
        j.mark_done(&[rec(2).key, rec(3).key]).unwrap();
        assert!(j.wants_compaction());
        j.compact().unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 0);
        assert!(!p.with_extension("tmp").exists());
        // still locked by us after the rename; appends go to the new file
        assert!(matches!(Journal::open(&p), Err(JournalError::Locked(_))));
        j.add_pending(&[rec(4)]).unwrap();
        drop(j);
        let j = Journal::open(&p).unwrap();
        assert_eq!(
            j.state().pending.keys().copied().collect::<Vec<_>>(),
            [rec(4).key]
        );
        assert_eq!(
            read_state(&d.path().join("missing")).unwrap().pending.len(),
            0
        );
    }

    #[test]
    fn compaction_keeps_pending() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let mut j = Journal::open(&p).unwrap();
        let recs: Vec<_> = (1..=10).map(rec).collect();
        j.add_pending(&recs).unwrap();
        let done: Vec<_> = recs[..7].iter().map(|r| r.key).collect();
        j.mark_done(&done).unwrap();
        j.compact().unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 3 * ENTRY_LEN as u64);
        drop(j);
        let st = read_state(&p).unwrap();
        assert_eq!(st.pending.len(), 3);
        assert!(st.pending.contains_key(&rec(10).key));
    }

    #[test]
    fn corrupt_entry_in_the_middle_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let mut j = Journal::open(&p).unwrap();
        j.add_pending(&[rec(1), rec(2), rec(3)]).unwrap();
        drop(j);
        let mut b = fs::read(&p).unwrap();
        b[ENTRY_LEN + 20] ^= 1;
        fs::write(&p, &b).unwrap();
        let st = read_state(&p).unwrap();
        assert_eq!((st.pending.len(), st.corrupt), (2, 1));
    }

    /// A crash can stop the file anywhere after the last completed fsync:
    /// for every such length, replay (and re-opening, which cuts the torn
    /// entry, then appending) keeps every acknowledged, not-done record.
    #[test]
    fn crash_at_every_byte_never_loses_an_acknowledged_record() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let mut j = Journal::open(&p).unwrap();
        // (durable length, keys that must be pending from then on)
        let mut steps: Vec<(u64, Vec<FileKey>)> = vec![(0, vec![])];
        let mut acked: Vec<FileKey> = Vec::new();
        let mut done: HashSet<FileKey> = HashSet::new();
        let mut i = 1;
        for round in 0..6u64 {
            let batch: Vec<_> = (0..3)
                .map(|_| {
                    i += 1;
                    rec(i)
                })
                .collect();
            j.add_pending(&batch).unwrap();
            acked.extend(batch.iter().map(|r| r.key)); // acked after fsync
            let must = |a: &Vec<FileKey>, d: &HashSet<FileKey>| {
                a.iter()
                    .filter(|k| !d.contains(k))
                    .copied()
                    .collect::<Vec<_>>()
            };
            steps.push((fs::metadata(&p).unwrap().len(), must(&acked, &done)));
            let fin: Vec<_> = acked.iter().take(round as usize * 2).copied().collect();
            j.mark_done(&fin).unwrap();
            done.extend(fin);
            steps.push((fs::metadata(&p).unwrap().len(), must(&acked, &done)));
        }
        drop(j);
        let full = fs::read(&p).unwrap();
        for w in steps.windows(2) {
            // acknowledged by `from` and not yet done by `to`
            let ((from, before), (to, after)) = (&w[0], &w[1]);
            let must: Vec<_> = before.iter().filter(|k| after.contains(k)).collect();
            for cut in *from..=*to {
                let img = &full[..cut as usize];
                let st = State::replay(img);
                for k in &must {
                    assert!(st.pending.contains_key(k), "cut {cut}: lost {k:?}");
                }
                assert_eq!(st.corrupt, 0);
                let q = d.path().join(format!("cut{cut}"));
                fs::write(&q, img).unwrap();
                let mut jj = Journal::open(&q).unwrap();
                assert_eq!(fs::metadata(&q).unwrap().len() % ENTRY_LEN as u64, 0);
                jj.add_pending(&[rec(500)]).unwrap();
                drop(jj);
                let st = read_state(&q).unwrap();
                assert_eq!(st.corrupt, 0, "cut {cut}");
                assert!(st.pending.contains_key(&rec(500).key));
                for k in &must {
                    assert!(st.pending.contains_key(k), "cut {cut} reopened: lost {k:?}");
                }
                fs::remove_file(&q).unwrap();
            }
        }
    }

    /// A journal image of `n` pending entries rec(1)..=rec(n).
    fn image(n: u64) -> (Vec<u8>, Vec<UnlinkRecord>) {
        let recs: Vec<_> = (1..=n).map(rec).collect();
        let mut img = vec![0u8; recs.len() * ENTRY_LEN];
        for (r, c) in recs.iter().zip(img.chunks_exact_mut(ENTRY_LEN)) {
            Entry::Pending(*r).encode(c).unwrap();
        }
        (img, recs)
    }

    /// Bytes that hold no entry (xorshift: no magic, no CRC by chance).
    fn garbage(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Replay `img` both read-only and through the writer (open, append,
    /// reopen): every record of `recs` but those at `lost` (indices) must
    /// be pending both ways. Returns the read-only state.
    fn check_kept(img: &[u8], recs: &[UnlinkRecord], lost: &[usize]) -> State {
        let st = State::replay(img);
        for (i, r) in recs.iter().enumerate() {
            if !lost.contains(&i) {
                assert!(st.pending.contains_key(&r.key), "entry {i} lost");
            }
        }
        assert!(st.pending.len() >= recs.len() - lost.len());
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        fs::write(&p, img).unwrap();
        let mut j = Journal::open(&p).unwrap();
        assert_eq!(j.state().pending.len(), st.pending.len());
        // Only a torn tail is cut.
        assert_eq!(
            fs::metadata(&p).unwrap().len(),
            (img.len() - st.tail) as u64
        );
        j.add_pending(&[rec(5000)]).unwrap();
        drop(j);
        let again = read_state(&p).unwrap();
        assert_eq!(again.corrupt, st.corrupt);
        assert!(again.pending.contains_key(&rec(5000).key));
        for k in st.pending.keys() {
            assert!(again.pending.contains_key(k), "reopened: lost {k:?}");
        }
        st
    }

    /// Before: every entry after the deleted byte was misaligned and
    /// failed its CRC (and the writer cut the last 63 bytes).
    #[test]
    fn a_deleted_byte_loses_only_its_entry() {
        let (img, recs) = image(100);
        for k in [0usize, 1, 50, 98] {
            for off in [0usize, 1, 31, 62] {
                let mut b = img.clone();
                b.remove(k * ENTRY_LEN + off);
                let st = check_kept(&b, &recs, &[k]);
                assert_eq!(st.pending.len(), 99, "k {k} off {off}");
                assert_eq!((st.corrupt, st.tail), (1, 0), "k {k} off {off}");
                assert_eq!(st.corrupt_bytes, ENTRY_LEN - 1);
                assert_eq!(st.first_corrupt, Some(k * ENTRY_LEN));
            }
        }
        // In the last entry: a torn tail, as a crash would leave it.
        let mut b = img.clone();
        b.remove(99 * ENTRY_LEN + 10);
        let st = check_kept(&b, &recs, &[99]);
        assert_eq!((st.pending.len(), st.corrupt, st.tail), (99, 0, 63));
    }

    /// A deleted last byte equal to the next entry's first one leaves the
    /// damaged entry valid and pulls the next one into it: both are kept.
    #[test]
    fn an_entry_overlapping_the_previous_one_is_kept() {
        let (mut img, mut recs) = image(100);
        // An entry whose CRC ends like a magic starts ('N').
        let odd = (10_000u64..)
            .map(rec)
            .find(|r| {
                let mut c = [0u8; ENTRY_LEN];
                Entry::Pending(*r).encode(&mut c).unwrap();
                c[ENTRY_LEN - 1] == b'N'
            })
            .unwrap();
        Entry::Pending(odd)
            .encode(&mut img[40 * ENTRY_LEN..])
            .unwrap();
        recs[40] = odd;
        img.remove(41 * ENTRY_LEN - 1);
        let st = check_kept(&img, &recs, &[]);
        assert_eq!(
            (st.pending.len(), st.corrupt, st.corrupt_bytes),
            (100, 1, 0)
        );
    }

    #[test]
    fn an_inserted_byte_loses_only_its_entry() {
        let (img, recs) = image(100);
        for k in [0usize, 50, 99] {
            for off in [1usize, 32, 63] {
                let mut b = img.clone();
                b.insert(k * ENTRY_LEN + off, 0x5a);
                let st = check_kept(&b, &recs, &[k]);
                assert_eq!((st.pending.len(), st.corrupt), (99, 1), "k {k} off {off}");
                assert_eq!(st.corrupt_bytes, ENTRY_LEN + 1);
            }
            // Between two entries: nothing lost.
            let mut b = img.clone();
            b.insert(k * ENTRY_LEN, 0x5a);
            let st = check_kept(&b, &recs, &[]);
            assert_eq!(
                (st.pending.len(), st.corrupt, st.corrupt_bytes),
                (100, 1, 1)
            );
        }
        // After the last entry: a torn tail.
        let mut b = img.clone();
        b.push(0x5a);
        let st = check_kept(&b, &recs, &[]);
        assert_eq!((st.pending.len(), st.corrupt, st.tail), (100, 0, 1));
    }

    #[test]
    fn zeroed_bytes_lose_only_the_entries_they_hit() {
        let (img, recs) = image(100);
        // Inside entry 20.
        let mut b = img.clone();
        b[20 * ENTRY_LEN + 5..20 * ENTRY_LEN + 15].fill(0);
        let st = check_kept(&b, &recs, &[20]);
        assert_eq!(
            (st.pending.len(), st.corrupt, st.corrupt_bytes),
            (99, 1, 64)
        );
        // Across entries 50 and 51: one region.
        let mut b = img.clone();
        b[51 * ENTRY_LEN - 4..51 * ENTRY_LEN + 6].fill(0);
        let st = check_kept(&b, &recs, &[50, 51]);
        assert_eq!(
            (st.pending.len(), st.corrupt, st.corrupt_bytes),
            (98, 1, 128)
        );
        // A zeroed KiB (its 16 entries) and 3000 zero bytes at the end (an
        // extent allocated, never written).
        let mut b = img.clone();
        b[4096..5 * 1024].fill(0);
        b.resize(64 * 100 + 3000, 0);
        let lost: Vec<usize> = (64..80).collect();
        let st = check_kept(&b, &recs, &lost);
        assert_eq!((st.pending.len(), st.corrupt), (84, 2));
    }

    #[test]
    fn garbage_in_the_middle_loses_only_what_it_overwrites() {
        let (img, recs) = image(100);
        // 1000 bytes inserted inside entry 30.
        let mut b = img.clone();
        let at = 30 * ENTRY_LEN + 17;
        b.splice(at..at, garbage(1000, 7));
        let st = check_kept(&b, &recs, &[30]);
        assert_eq!(
            (st.pending.len(), st.corrupt, st.corrupt_bytes),
            (99, 1, 1064)
        );
        // 300 bytes overwritten from entry 60 on: entries 60..=64.
        let mut b = img.clone();
        let at = 60 * ENTRY_LEN + 3;
        b[at..at + 300].copy_from_slice(&garbage(300, 11));
        let st = check_kept(&b, &recs, &[60, 61, 62, 63, 64]);
        assert_eq!(
            (st.pending.len(), st.corrupt, st.corrupt_bytes),
            (95, 1, 320)
        );
        // Garbage at the end, longer than an entry: counted, not cut.
        let mut b = img.clone();
        b.extend(garbage(100, 13));
        let st = check_kept(&b, &recs, &[]);
        assert_eq!((st.pending.len(), st.corrupt, st.tail), (100, 1, 0));
    }

    #[test]
    fn a_torn_tail_after_a_corruption_is_cut() {
        let (img, recs) = image(100);
        let mut b = img.clone();
        b.remove(10 * ENTRY_LEN + 3);
        b.truncate(99 * ENTRY_LEN - 1 + 20);
        let st = check_kept(&b, &recs, &[10, 99]);
        assert_eq!((st.pending.len(), st.corrupt, st.tail), (98, 1, 20));
    }

    #[test]
    fn no_compaction_while_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("j");
        let mut j = Journal::open(&p).unwrap();
        j.add_pending(&[rec(1), rec(2), rec(3)]).unwrap();
        drop(j);
        let mut b = fs::read(&p).unwrap();
        b.remove(ENTRY_LEN + 7);
        fs::write(&p, &b).unwrap();
        let mut j = Journal::open(&p).unwrap();
        assert_eq!(j.state().corrupt, 1);
        j.mark_done(&[rec(1).key, rec(3).key]).unwrap();
        // Everything left is done: compaction would be due.
        assert!(j.state().pending.is_empty());
        assert!(!j.wants_compaction());
        assert!(j.compaction_held_back());
        assert!(matches!(
            j.compact(),
            Err(JournalError::Corrupt {
                regions: 1,
                bytes: 63,
                ..
            })
        ));
        let len = (b.len() + 2 * ENTRY_LEN) as u64;
        assert_eq!(fs::metadata(&p).unwrap().len(), len);
        assert!(!p.with_extension("tmp").exists());
        drop(j);
        // The damaged bytes are still there.
        assert_eq!(&fs::read(&p).unwrap()[..b.len()], &b[..]);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Damage {
            Delete(usize, usize),
            Insert(usize, Vec<u8>),
            Zero(usize, usize),
            Overwrite(usize, Vec<u8>),
        }

        fn damage() -> impl Strategy<Value = Damage> {
            let bytes = proptest::collection::vec(any::<u8>(), 1..300);
            prop_oneof![
                (any::<usize>(), 1usize..300).prop_map(|(a, n)| Damage::Delete(a, n)),
                (any::<usize>(), bytes.clone()).prop_map(|(a, b)| Damage::Insert(a, b)),
                (any::<usize>(), 1usize..300).prop_map(|(a, n)| Damage::Zero(a, n)),
                (any::<usize>(), bytes).prop_map(|(a, b)| Damage::Overwrite(a, b)),
            ]
        }

        /// Entry i: pending rec(i), or a done marker of an earlier key
        /// (seq i: every entry differs from the others).
        fn entries(kinds: &[bool]) -> Vec<Entry> {
            kinds
                .iter()
                .enumerate()
                .map(|(i, done)| {
                    let i = i as u64;
                    if *done {
                        Entry::Done {
                            seq: i,
                            key: rec(i / 2).key,
                        }
                    } else {
                        Entry::Pending(rec(i))
                    }
                })
                .collect()
        }

        /// Apply `d` to `img`; the indices of the entries it touched.
        fn apply(img: &mut Vec<u8>, d: &Damage) -> Vec<usize> {
            let len = img.len();
            let hit = |a: usize, b: usize| -> Vec<usize> {
                (0..len / ENTRY_LEN)
                    .filter(|i| i * ENTRY_LEN < b && a < (i + 1) * ENTRY_LEN)
                    .collect()
            };
            match d {
                Damage::Delete(a, n) => {
                    let a = a % len;
                    let b = (a + n).min(len);
                    img.drain(a..b);
                    hit(a, b)
                }
                Damage::Insert(a, bytes) => {
                    let a = a % (len + 1);
                    img.splice(a..a, bytes.iter().copied());
                    // Only an entry the bytes land strictly inside.
                    (0..len / ENTRY_LEN)
                        .filter(|i| i * ENTRY_LEN < a && a < (i + 1) * ENTRY_LEN)
                        .collect()
                }
                Damage::Zero(a, n) => {
                    let a = a % len;
                    let b = (a + n).min(len);
                    img[a..b].fill(0);
                    hit(a, b)
                }
                Damage::Overwrite(a, bytes) => {
                    let a = a % len;
                    let b = (a + bytes.len()).min(len);
                    img[a..b].copy_from_slice(&bytes[..b - a]);
                    hit(a, b)
                }
            }
        }

        /// The indices in `orig` of the entries a scan of `img` finds.
        fn found(img: &[u8], orig: &[Entry]) -> Vec<usize> {
            scan(img)
                .filter_map(|s| match s {
                    Scanned::Entry { entry, .. } => Some(entry),
                    Scanned::Corrupt { .. } => None,
                })
                .map(|e| {
                    orig.iter()
                        .position(|o| *o == e)
                        .unwrap_or_else(|| panic!("entry from nowhere: {e:?}"))
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever the damage, a replay finds every entry it did not
            /// touch, in order, and nothing else; so does the writer after
            /// opening (which cuts a torn tail only) and appending.
            #[test]
            fn damage_costs_only_the_entries_it_touches(
                kinds in proptest::collection::vec(any::<bool>(), 1..60),
                d in damage(),
            ) {
                let orig = entries(&kinds);
                let mut img = vec![0u8; orig.len() * ENTRY_LEN];
                for (e, c) in orig.iter().zip(img.chunks_exact_mut(ENTRY_LEN)) {
                    e.encode(c).unwrap();
                }
                let touched = apply(&mut img, &d);
                let got = found(&img, &orig);
                prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {:?}", got);
                for i in (0..orig.len()).filter(|i| !touched.contains(i)) {
                    prop_assert!(got.contains(&i), "entry {} lost: {:?}", i, got);
                }
                // The state is the replay of exactly those entries.
                let mut want = State::default();
                for &i in &got {
                    want.apply(orig[i]);
                }
                let st = State::replay(&img);
                prop_assert_eq!(&st.pending, &want.pending);
                prop_assert_eq!(st.entries, got.len());

                let dir = tempfile::tempdir().unwrap();
                let p = dir.path().join("j");
                fs::write(&p, &img).unwrap();
                let mut j = Journal::open(&p).unwrap();
                j.add_pending(&[rec(9999)]).unwrap();
                drop(j);
                let after = fs::read(&p).unwrap();
                prop_assert_eq!(&after[..img.len() - st.tail], &img[..img.len() - st.tail]);
                let mut orig2 = orig.clone();
                orig2.push(Entry::Pending(rec(9999)));
                let got2 = found(&after, &orig2);
                prop_assert_eq!(&got2[..got2.len() - 1], &got[..]);
                prop_assert_eq!(got2.last(), Some(&orig.len()));
            }
        }
    }
}
