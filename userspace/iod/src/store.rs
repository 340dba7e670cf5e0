// SPDX-License-Identifier: GPL-2.0
//! Local files: one per NFSP file, at `filekey::write_local_path` under the
//! data directory; positioned I/O only.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use nfsp_proto::filekey::{FileKey, LOCAL_PATH_LEN};
use nfsp_proto::wire::ListEntry;

/// Errors of the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a local file.
    #[error("{op} {path}: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// Local path.
        path: String,
        /// Cause.
        source: io::Error,
    },
    /// The key could not be turned into a path (cannot happen).
    #[error("bad file key: {0}")]
    Key(nfsp_proto::ProtoError),
    /// A pNFS data-server filehandle of a layout epoch the file left.
    #[error("filehandle of layout epoch {handle}, fenced at {current}")]
    Fenced {
        /// The handle's epoch.
        handle: u32,
        /// The local file's epoch.
        current: u32,
    },
}

/// Extended attribute of a local file holding its layout epoch (u32 LE,
/// absent = 0): the pNFS data server refuses filehandles minted before it.
const EPOCH_XATTR: &str = "user.nfsp.layout_epoch";

/// File of the data directory holding its identity (8 hex digits and a
/// newline; see [`nfsp_proto::wire::identity_of`]). Not a two-hex-digit
/// name: listings never see it.
pub const IDENTITY_FILE: &str = "nfsp-identity";

/// What a data directory's identity file says, or why it cannot be used.
fn parse_identity(text: &str) -> Option<u32> {
    let hex = text.strip_suffix('\n')?;
    nfsp_proto::control::parse_identity(hex)
        .ok()
        .filter(|i| *i != nfsp_proto::wire::UNKNOWN_IDENTITY)
}

/// A new file in `dir` with a name of its own.
fn tempfile_in(dir: &Path) -> io::Result<(File, PathBuf)> {
    let p = dir.join(format!(".epoch-probe-{}", std::process::id()));
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)?;
    Ok((f, p))
}

/// The layout epoch of an open local file.
fn epoch_of(f: &File, p: &Path) -> Result<u32, StoreError> {
    let mut b = [0u8; 4];
    match rustix::fs::fgetxattr(f, EPOCH_XATTR, &mut b[..]) {
        Ok(4) => Ok(u32::from_le_bytes(b)),
        Ok(_) => Err(io_err(
            "getxattr",
            p,
            io::Error::new(ErrorKind::InvalidData, "layout epoch is not 4 bytes"),
        )),
        Err(rustix::io::Errno::NODATA) => Ok(0),
        Err(e) => Err(io_err("getxattr", p, e.into())),
    }
}

/// Raises the layout epoch of an open local file to `epoch` (never
/// lowers it), durably: an iod that restarts keeps refusing fenced handles.
/// Returns whether it was raised.
fn raise_epoch(f: &File, p: &Path, epoch: u32) -> Result<bool, StoreError> {
    if epoch <= epoch_of(f, p)? {
        return Ok(false);
    }
    rustix::fs::fsetxattr(
        f,
        EPOCH_XATTR,
        &epoch.to_le_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| io_err("setxattr", p, e.into()))?;
    f.sync_all().map_err(|e| io_err("fsync", p, e))?;
    Ok(true)
}

/// Refuses a handle of `epoch` for the file `f`.
fn check_epoch(f: &File, p: &Path, epoch: u32) -> Result<(), StoreError> {
    let current = epoch_of(f, p)?;
    if epoch < current {
        return Err(StoreError::Fenced {
            handle: epoch,
            current,
        });
    }
    Ok(())
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Writes hold one of these shared, a growing TRUNCATE exclusive (by
    /// key hash): it reads the length and sets a larger one, which must
    /// not cut what a write put past it meanwhile.
    lengths: Arc<[RwLock<()>; LENGTH_LOCKS]>,
    /// Keys whose local file was created since their last commit: their
    /// directories are synced then (a clean directory's fsync still
    /// costs a cache flush, so not on every COMMIT).
    fresh: Arc<Mutex<HashSet<FileKey>>>,
}

/// Most keys [`Store::fresh`] holds; past it, directories are synced as
/// soon as a file is created.
const MAX_FRESH: usize = 65536;

/// Locks of [`Store::lengths`].
const LENGTH_LOCKS: usize = 64;

fn io_err(op: &'static str, p: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        op,
        path: p.display().to_string(),
        source,
    }
}

impl Store {
    /// Use `root` (created if missing).
    pub fn new(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        Ok(Store {
            root: root.to_path_buf(),
            lengths: Arc::new(std::array::from_fn(|_| RwLock::new(()))),
            fresh: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    /// The identity of the data directory, and whether this start drew
    /// it: it is drawn (`draw`, never 0) and made durable when the
    /// directory has none, i.e. at the first start on it, or on a wiped
    /// or new disk. A file that exists but cannot be read or parsed is an
    /// error: the iod must not start as another directory.
    pub fn identity(&self, mut draw: impl FnMut() -> io::Result<u32>) -> io::Result<(u32, bool)> {
        let path = self.root.join(IDENTITY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                return parse_identity(&text).map(|i| (i, false)).ok_or_else(|| {
                    io::Error::new(
                        ErrorKind::InvalidData,
                        format!(
                            "{}: not an identity (8 hex digits, not all zero)",
                            path.display()
                        ),
                    )
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
        let identity = loop {
            let i = draw()?;
            if i != nfsp_proto::wire::UNKNOWN_IDENTITY {
                break i;
            }
        };
        // Durable before the first answer names it: a crash must not
        // bring the directory back with no identity, or another one.
        let tmp = self
            .root
            .join(format!(".{IDENTITY_FILE}.{}", std::process::id()));
        let written = (|| {
            let f = File::create(&tmp)?;
            f.write_all_at(format!("{identity:08x}\n").as_bytes(), 0)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.root)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
        }
        Ok((identity, true))
    }

    /// Whether the data directory keeps layout epochs (user extended
    /// attributes), which a pNFS data server needs to fence old handles.
    pub fn check_epochs(&self) -> io::Result<()> {
        let probe = tempfile_in(&self.root)?;
        let r = rustix::fs::fsetxattr(
            &probe.0,
            EPOCH_XATTR,
            &[0; 4],
            rustix::fs::XattrFlags::empty(),
        );
        let _ = fs::remove_file(&probe.1);
        r.map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!(
                    "no user extended attributes ({e}): a data server cannot fence old layouts"
                ),
            )
        })
    }

    /// Size, free and available bytes of the file system holding the
    /// data (zeros if it cannot be read), for PONG: the meta-server adds
    /// them up for `df`.
    pub fn space(&self) -> (u64, u64, u64) {
        match nix::sys::statvfs::statvfs(&self.root) {
            Ok(s) => {
                let unit = s.fragment_size().max(1);
                let bytes = |blocks: u64| blocks.saturating_mul(unit);
                (
                    bytes(s.blocks()),
                    bytes(s.blocks_free()),
                    bytes(s.blocks_available()),
                )
            }
            Err(_) => (0, 0, 0),
        }
    }

    /// Absolute local path of a key.
    pub fn path(&self, key: &FileKey) -> Result<PathBuf, StoreError> {
        let mut b = [0u8; LOCAL_PATH_LEN];
        let rel = key.write_local_path(&mut b).map_err(StoreError::Key)?;
        Ok(self.root.join(rel))
    }

    fn open_rw(&self, key: &FileKey) -> Result<(File, PathBuf), StoreError> {
        let p = self.path(key)?;
        match OpenOptions::new().read(true).write(true).open(&p) {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("open", &p, e)),
        }
        let mut tries = 0;
        loop {
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&p)
            {
                Ok(f) => {
                    self.created(key, &p)?;
                    return Ok((f, p));
                }
                Err(e) if e.kind() == ErrorKind::NotFound && tries < 3 => {
                    tries += 1;
                    if let Some(dir) = p.parent() {
                        fs::create_dir_all(dir).map_err(|e| io_err("mkdir", dir, e))?;
                    }
                }
                Err(e) => return Err(io_err("open", &p, e)),
            }
        }
    }

    /// Read `out.len()` bytes at `offset`; missing file, holes and bytes
    /// past the end read as zeros.
    pub fn read(&self, key: &FileKey, offset: u64, out: &mut [u8]) -> Result<(), StoreError> {
        let p = self.path(key)?;
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                out.fill(0);
                return Ok(());
            }
            Err(e) => return Err(io_err("open", &p, e)),
        };
        let mut done = 0usize;
        while done < out.len() {
            let Some(dst) = out.get_mut(done..) else {
                break;
            };
            let Some(off) = offset.checked_add(done as u64) else {
                break;
            };
            match f.read_at(dst, off) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("read", &p, e)),
            }
        }
        if let Some(rest) = out.get_mut(done..) {
            rest.fill(0);
        }
        Ok(())
    }

    /// Write `data` at `offset` (creating file and directories).
    pub fn write(&self, key: &FileKey, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        self.write_fenced(key, offset, data, None)
    }

    /// Write `data` at `offset` for a data-server filehandle of layout
    /// epoch `epoch` ([`StoreError::Fenced`] if the file left it).
    pub fn write_at_epoch(
        &self,
        key: &FileKey,
        offset: u64,
        data: &[u8],
        epoch: u32,
    ) -> Result<(), StoreError> {
        self.write_fenced(key, offset, data, Some(epoch))
    }

    fn write_fenced(
        &self,
        key: &FileKey,
        offset: u64,
        data: &[u8],
        epoch: Option<u32>,
    ) -> Result<(), StoreError> {
        let (f, p) = self.open_rw(key)?;
        // Checked under the lock a fencing TRUNCATE holds exclusive: no
        // write of a fenced handle lands after the TRUNCATE is answered.
        let _shared = self
            .length_lock(key)
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(epoch) = epoch {
            check_epoch(&f, &p, epoch)?;
        }
        f.write_all_at(data, offset)
            .map_err(|e| io_err("write", &p, e))
    }

    /// Refuses a data-server filehandle of layout epoch `epoch` for a file
    /// that left it (a missing file is at epoch 0).
    pub fn check_epoch(&self, key: &FileKey, epoch: u32) -> Result<(), StoreError> {
        let p = self.path(key)?;
        match File::open(&p) {
            Ok(f) => check_epoch(&f, &p, epoch),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("open", &p, e)),
        }
    }

    fn length_lock(&self, key: &FileKey) -> &RwLock<()> {
        &self.lengths[key.hash() as usize % LENGTH_LOCKS]
    }

    /// Flush file data to stable storage (a missing file is fine), and
    /// the names leading to it: a file (or hashed sub-directory) the
    /// writes created is not durable until its directory is synced.
    pub fn commit(&self, key: &FileKey) -> Result<(), StoreError> {
        let p = self.path(key)?;
        match File::open(&p) {
            Ok(f) => {
                f.sync_data().map_err(|e| io_err("fsync", &p, e))?;
                self.sync_names(key, &p)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("open", &p, e)),
        }
    }

    /// Remembers that `key`'s local file was just created at `p` (its
    /// name is not durable until its directories are synced).
    fn created(&self, key: &FileKey, p: &Path) -> Result<(), StoreError> {
        let mut fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        if fresh.len() < MAX_FRESH {
            fresh.insert(*key);
            return Ok(());
        }
        drop(fresh);
        self.sync_dirs(p)
    }

    /// Syncs the directories leading to `key`'s local file if it was
    /// created since they were last synced.
    fn sync_names(&self, key: &FileKey, p: &Path) -> Result<(), StoreError> {
        let was_fresh = self
            .fresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if was_fresh {
            self.sync_dirs(p)?;
        }
        Ok(())
    }

    /// Sync the directories from a local file's up to the data directory.
    fn sync_dirs(&self, file: &Path) -> Result<(), StoreError> {
        let mut dir = file.parent();
        while let Some(d) = dir {
            File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err("fsync", d, e))?;
            if d == self.root {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// Set the local length (creating the file if missing), after raising
    /// its layout epoch to `epoch`; durable when it returns, like the
    /// SETATTR it serves (a cut undone by a crash would bring back bytes
    /// the client was told are gone).
    pub fn truncate(&self, key: &FileKey, len: u64, epoch: u32) -> Result<(), StoreError> {
        let (f, p) = self.open_rw(key)?;
        let _alone = self
            .length_lock(key)
            .write()
            .unwrap_or_else(|e| e.into_inner());
        raise_epoch(&f, &p, epoch)?;
        f.set_len(len).map_err(|e| io_err("truncate", &p, e))?;
        f.sync_all().map_err(|e| io_err("fsync", &p, e))?;
        self.sync_names(key, &p)
    }

    /// The local file's length (0 if it does not exist).
    pub fn len(&self, key: &FileKey) -> Result<u64, StoreError> {
        let p = self.path(key)?;
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err("stat", &p, e)),
        }
    }

    /// Make the local file at least `len` long (a shorter one grows with
    /// a hole; a longer one stays), after raising its layout epoch to
    /// `epoch`.
    pub fn extend(&self, key: &FileKey, len: u64, epoch: u32) -> Result<(), StoreError> {
        let (f, p) = self.open_rw(key)?;
        let _alone = self
            .length_lock(key)
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let raised = raise_epoch(&f, &p, epoch)?;
        let cur = f.metadata().map_err(|e| io_err("stat", &p, e))?.len();
        if cur < len {
            f.set_len(len).map_err(|e| io_err("truncate", &p, e))?;
            f.sync_all().map_err(|e| io_err("fsync", &p, e))?;
        }
        // A fence's epoch on a file it created must survive a crash too
        // (a missing file is at epoch 0).
        if raised || cur < len {
            self.sync_names(key, &p)?;
        }
        Ok(())
    }

    /// Remove the local file; returns whether it existed. Empty hashed
    /// sub-directories are removed too (best effort).
    pub fn unlink(&self, key: &FileKey) -> Result<bool, StoreError> {
        let p = self.path(key)?;
        self.fresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        match fs::remove_file(&p) {
            Ok(()) => {
                let mut dir = p.parent();
                for _ in 0..2 {
                    let Some(d) = dir else { break };
                    if fs::remove_dir(d).is_err() {
                        break;
                    }
                    dir = d.parent();
                }
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("unlink", &p, e)),
        }
    }

    /// Up to `max` local files following `after` in listing order
    /// (`FileKey::list_cmp`, i.e. local path order), and whether more
    /// follow. Walks the hashed sub-directories in order from the cursor's
    /// own, so memory holds one listing of each level at a time: at most
    /// 256 + 256 names plus the names of one leaf directory (files / 65536
    /// on average), never the whole tree. Names that are not local paths
    /// of a key (temporary or foreign files) are skipped.
    pub fn list(
        &self,
        after: Option<&FileKey>,
        max: usize,
    ) -> Result<(Vec<ListEntry>, bool), StoreError> {
        let start = after.map(|k| k.subdirs()).unwrap_or((0, 0));
        let mut out = Vec::new();
        for a in hex_dirs(&self.root)? {
            if a < start.0 {
                continue;
            }
            let da = self.root.join(format!("{a:02x}"));
            for b in hex_dirs(&da)? {
                if (a, b) < start {
                    continue;
                }
                let db = da.join(format!("{b:02x}"));
                let mut keys = leaf_keys(&db, a, b)?;
                keys.sort_by(|x, y| x.list_cmp(y));
                for key in keys {
                    if after.is_some_and(|c| c.list_cmp(&key).is_ge()) {
                        continue;
                    }
                    if out.len() >= max {
                        return Ok((out, true));
                    }
                    let p = self.path(&key)?;
                    match fs::symlink_metadata(&p) {
                        Ok(m) if m.is_file() => {
                            use std::os::unix::fs::MetadataExt;
                            out.push(ListEntry {
                                key,
                                len: m.len(),
                                mtime_s: u64::try_from(m.mtime()).unwrap_or(0),
                            });
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err("stat", &p, e)),
                    }
                }
            }
        }
        Ok((out, false))
    }
}

/// The two-hex-digit sub-directories of `dir`, sorted (a missing
/// directory, removed by a concurrent unlink, is empty).
fn hex_dirs(dir: &Path) -> Result<Vec<u8>, StoreError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("readdir", dir, e)),
    };
    let mut v = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| io_err("readdir", dir, e))?;
        let name = ent.file_name();
        let Some(n) = name.to_str() else { continue };
        let hex = n.len() == 2 && n.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        if hex {
            if let Ok(x) = u8::from_str_radix(n, 16) {
                v.push(x);
            }
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// The keys of the well-placed files in leaf directory `dir` = `a/b`.
fn leaf_keys(dir: &Path, a: u8, b: u8) -> Result<Vec<FileKey>, StoreError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("readdir", dir, e)),
    };
    let mut v = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| io_err("readdir", dir, e))?;
        let name = ent.file_name();
        let Some(n) = name.to_str() else { continue };
        if let Ok(k) = FileKey::parse_local_path(&format!("{a:02x}/{b:02x}/{n}")) {
            v.push(k);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn drawn_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path()).unwrap();
        assert_eq!(
            store.identity(|| Ok(0x1234_abcd)).unwrap(),
            (0x1234_abcd, true)
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(IDENTITY_FILE)).unwrap(),
            "1234abcd\n"
        );
        // Later starts keep it; nothing is drawn.
        let again = Store::new(dir.path()).unwrap();
        assert_eq!(
            again.identity(|| panic!("drawn again")).unwrap(),
            (0x1234_abcd, false)
        );
        // A draw of 0 (unknown) is drawn again.
        let other = tempfile::tempdir().unwrap();
        let mut draws = [0u32, 7].into_iter();
        let s = Store::new(other.path()).unwrap();
        assert_eq!(s.identity(|| Ok(draws.next().unwrap())).unwrap(), (7, true));
        // No temporary file is left, and listings do not see the file.
        let names: Vec<_> = fs::read_dir(other.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [IDENTITY_FILE]);
        assert!(hex_dirs(other.path()).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_identity_is_an_error() {
        for text in ["", "1234abcd", "00000000\n", "1234abcg\n", "1234abcd0\n"] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(IDENTITY_FILE), text).unwrap();
            let store = Store::new(dir.path()).unwrap();
            let e = store.identity(|| Ok(9)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{text:?}");
            assert!(e.to_string().contains(IDENTITY_FILE), "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A growing TRUNCATE never cuts what a write put past it meanwhile
    /// (the module grows every iod's file before a write past the end, and
    /// nfsd writes in parallel).
    #[test]
    fn growing_never_cuts_concurrent_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path()).unwrap();
        let key = FileKey::new(1, 2, 3);
        let block = [0xabu8; 4096];
        let n = 2000u64;
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..n {
                    store.write(&key, i * 4096, &block).unwrap();
                }
            });
            s.spawn(|| {
                for i in 0..n {
                    // Lengths the writer has passed or is about to reach.
                    store.extend(&key, i * 4096 + 100, 0).unwrap();
                }
            });
        });
        let data = std::fs::read(store.path(&key).unwrap()).unwrap();
        assert_eq!(data.len() as u64, n * 4096);
        assert!(data.iter().all(|b| *b == 0xab), "a write was cut");
    }

    /// A fencing TRUNCATE raises the epoch durably; handles of an older
    /// epoch can then neither write nor pass the check, newer ones can.
    #[test]
    fn fences_older_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path()).unwrap();
        let key = FileKey::new(4, 5, 6);
        store.write_at_epoch(&key, 0, b"before", 0).unwrap();
        store.truncate(&key, 3, 2).unwrap();
        let fenced = |r: Result<(), StoreError>| {
            matches!(
                r,
                Err(StoreError::Fenced {
                    handle: 1,
                    current: 2
                })
            )
        };
        assert!(fenced(store.write_at_epoch(&key, 0, b"late", 1)));
        assert!(fenced(store.check_epoch(&key, 1)));
        store.write_at_epoch(&key, 3, b"new", 2).unwrap();
        // Never lowered, and kept by a new Store (an iod restart).
        store.extend(&key, 10, 1).unwrap();
        let again = Store::new(dir.path()).unwrap();
        assert!(fenced(again.check_epoch(&key, 1)));
        again.check_epoch(&key, 3).unwrap();
        assert_eq!(
            std::fs::read(store.path(&key).unwrap()).unwrap(),
            b"befnew\0\0\0\0"
        );
        // A file that does not exist yet is at epoch 0.
        store.check_epoch(&FileKey::new(7, 8, 9), 0).unwrap();
    }
}
