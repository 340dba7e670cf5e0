// SPDX-License-Identifier: GPL-2.0
//! Local files: one per NFSP file, at `filekey::write_local_path` under the
//! data directory; positioned I/O only.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nfsp_proto::filekey::{FileKey, LOCAL_PATH_LEN};

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
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

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
        })
    }

    /// Absolute local path of a key.
    pub fn path(&self, key: &FileKey) -> Result<PathBuf, StoreError> {
        let mut b = [0u8; LOCAL_PATH_LEN];
        let rel = key.write_local_path(&mut b).map_err(StoreError::Key)?;
        Ok(self.root.join(rel))
    }

    fn open_rw(&self, key: &FileKey) -> Result<(File, PathBuf), StoreError> {
        let p = self.path(key)?;
        let mut tries = 0;
        loop {
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&p)
            {
                Ok(f) => return Ok((f, p)),
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
        let (f, p) = self.open_rw(key)?;
        f.write_all_at(data, offset)
            .map_err(|e| io_err("write", &p, e))
    }

    /// Flush file data to stable storage (a missing file is fine).
    pub fn commit(&self, key: &FileKey) -> Result<(), StoreError> {
        let p = self.path(key)?;
        match File::open(&p) {
            Ok(f) => f.sync_data().map_err(|e| io_err("fsync", &p, e)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("open", &p, e)),
        }
    }

    /// Set the local length (creating the file if missing).
    pub fn truncate(&self, key: &FileKey, len: u64) -> Result<(), StoreError> {
        let (f, p) = self.open_rw(key)?;
        f.set_len(len).map_err(|e| io_err("truncate", &p, e))
    }

    /// Remove the local file; returns whether it existed. Empty hashed
    /// sub-directories are removed too (best effort).
    pub fn unlink(&self, key: &FileKey) -> Result<bool, StoreError> {
        let p = self.path(key)?;
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
}
