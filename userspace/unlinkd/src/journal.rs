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

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nfsp_proto::journal::{Entries, Entry, ENTRY_LEN};
use nfsp_proto::{FileKey, UnlinkRecord};

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
}

fn io_err<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        op,
        path: p.display().to_string(),
        source,
    }
}

/// What a journal says after replay.
#[derive(Debug, Default, Clone)]
pub struct State {
    /// Deletions still to carry out, by key.
    pub pending: BTreeMap<FileKey, UnlinkRecord>,
    /// Keys done (since the last compaction).
    pub done: HashSet<FileKey>,
    /// Entries that did not decode (skipped).
    pub corrupt: usize,
    /// Complete entries read.
    pub entries: usize,
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

    /// Replay a journal image (a partial last entry is ignored).
    pub fn replay(buf: &[u8]) -> State {
        let mut st = State::default();
        for (at, e) in Entries::new(buf) {
            match e {
                Ok(e) => st.apply(e),
                Err(err) => {
                    log::warn!("journal entry at byte {at} skipped: {err}");
                    st.corrupt += 1;
                }
            }
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
        let state = State::replay(&buf);
        let ents = Entries::new(&buf);
        if ents.tail() != 0 {
            log::warn!(
                "{}: cutting a partial last entry ({} bytes)",
                path.display(),
                ents.tail()
            );
            file.set_len(ents.complete_len() as u64)
                .map_err(io_err("truncate", path))?;
            file.sync_all().map_err(io_err("fsync", path))?;
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

    /// Whether compaction would shrink the file noticeably: everything is
    /// done and the file is not empty, or done entries dominate.
    pub fn wants_compaction(&self) -> bool {
        let done = self.state.entries.saturating_sub(self.state.pending.len());
        (self.state.pending.is_empty() && self.state.entries > 0)
            || (done > 4096 && done > 4 * self.state.pending.len())
    }

    /// Rewrite the journal with the pending entries only (atomically:
    /// temporary file, fsync, rename, fsync of the directory). The set of
    /// done keys is kept in memory (to recognise redeliveries).
    pub fn compact(&mut self) -> Result<(), JournalError> {
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
        self.state.corrupt = 0;
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
}
