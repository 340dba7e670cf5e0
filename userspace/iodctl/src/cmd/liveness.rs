// SPDX-License-Identifier: GPL-2.0
//! Is the file a data key names still there? Asked of the file system by
//! inode, not by walking names: a walk misses a file renamed from a
//! directory not yet read into one already read, and an export shares its
//! file system (and so its export id) with whatever else lies on it; either
//! would make a live file look like an orphan, and `fsck --delete` would
//! remove its data.
//!
//! On ext4 an NFS-style handle (`FILEID_INO32_GEN`) with generation 0 opens
//! an inode by number alone (ext4 only compares a non-zero generation); the
//! file's `trusted.nfsp` seed then tells the key's file from a later one
//! that reused the inode number. Other file systems check the generation,
//! which a key does not hold: there the answer is "cannot tell".

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;
use nfsp_proto::metafile::HEADER_LEN;
use nfsp_proto::{FileKey, MetaHeader};

/// What the file system says of a key's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The inode holds the key's file (with a link): its data is in use.
    Live,
    /// No such inode, or it now holds another file: the data is orphan.
    Gone,
    /// Unknown (file system without inode-number lookup, an unlinked file
    /// still open, an error): never deleted.
    Unknown,
}

/// `FILEID_INO32_GEN` (include/linux/exportfs.h): 32-bit inode, generation.
const FILEID_INO32_GEN: i32 = 1;

/// `struct file_handle` with the 8 bytes of a `FILEID_INO32_GEN` handle.
#[repr(C)]
struct InoGenHandle {
    handle_bytes: u32,
    handle_type: i32,
    ino: u32,
    generation: u32,
}

/// Looks inodes up on the file system holding an export directory.
pub struct InodeLookup {
    mount: File,
}

impl InodeLookup {
    /// For the file system of `dir`; None where inodes cannot be opened by
    /// number alone (not ext4).
    pub fn new(dir: &Path) -> anyhow::Result<Option<Self>> {
        let mount = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        let fs = nix::sys::statfs::fstatfs(&mount)
            .with_context(|| format!("statfs {}", dir.display()))?;
        if fs.filesystem_type() != nix::sys::statfs::EXT4_SUPER_MAGIC {
            return Ok(None);
        }
        Ok(Some(InodeLookup { mount }))
    }

    /// Whether `key`'s file exists (needs CAP_DAC_READ_SEARCH).
    pub fn liveness(&self, key: &FileKey) -> Liveness {
        let Ok(ino) = u32::try_from(key.inode) else {
            return Liveness::Unknown;
        };
        let mut handle = InoGenHandle {
            handle_bytes: 8,
            handle_type: FILEID_INO32_GEN,
            ino,
            generation: 0,
        };
        // SAFETY: `handle` is a `struct file_handle` followed by the
        // `handle_bytes` (8) bytes it declares, and lives across the call.
        let fd = unsafe {
            libc::open_by_handle_at(
                self.mount.as_raw_fd(),
                (&raw mut handle).cast::<libc::file_handle>(),
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::ESTALE) | Some(libc::ENOENT) => Liveness::Gone,
                // A symlink or device now has the inode number (O_NOFOLLOW
                // on a symlink, an open refused): not a regular file, so
                // not the key's.
                Some(libc::ELOOP) => Liveness::Gone,
                _ => Liveness::Unknown,
            };
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let file = unsafe { File::from_raw_fd(fd) };
        let Ok(md) = file.metadata() else {
            return Liveness::Unknown;
        };
        if !md.is_file() {
            return Liveness::Gone;
        }
        if md.nlink() == 0 {
            // Removed but still open: its deletion record is on the way.
            return Liveness::Unknown;
        }
        match seed_of(&file) {
            Ok(Some(seed)) if seed == key.seed => Liveness::Live,
            Ok(_) => Liveness::Gone,
            Err(_) => Liveness::Unknown,
        }
    }
}

/// The seed in `file`'s `trusted.nfsp` header; None without a valid one.
fn seed_of(file: &File) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 256];
    // SAFETY: `file` is open, the name a C string, the buffer as long as
    // the length passed.
    let n = unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            c"trusted.nfsp".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    Ok(header_from(n, &buf)?.map(|h| h.seed))
}

/// The header from a `getxattr` family call's result `n` into `buf`: None
/// when the file has none (or not a valid one).
pub fn header_from(n: isize, buf: &[u8]) -> io::Result<Option<MetaHeader>> {
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::EOPNOTSUPP) => Ok(None),
            _ => Err(e),
        };
    }
    match buf.get(..n as usize) {
        Some(b) if b.len() == HEADER_LEN => Ok(MetaHeader::decode(b).ok()),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// Sets `path`'s `trusted.nfsp` header with `seed`; false without the
    /// privilege (not root).
    fn set_header(path: &Path, seed: u64) -> bool {
        let mut buf = [0u8; 256];
        let Ok(n) = MetaHeader::new(seed, 4, 0).encode(&mut buf) else {
            return false;
        };
        let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: valid C strings, the buffer holds `n` bytes.
        let rc = unsafe {
            libc::setxattr(c.as_ptr(), c"trusted.nfsp".as_ptr(), buf.as_ptr().cast(), n, 0)
        };
        rc == 0
    }

    /// A scratch directory in the temporary one with its inode lookup, or
    /// None where this cannot run (not ext4, not root).
    fn scratch() -> Option<(tempfile::TempDir, InodeLookup)> {
        let dir = tempfile::tempdir().ok()?;
        let lookup = InodeLookup::new(dir.path()).ok()??;
        let probe = dir.path().join("probe");
        std::fs::write(&probe, b"").ok()?;
        set_header(&probe, 1).then_some(())?;
        Some((dir, lookup))
    }

    #[test]
    fn a_key_is_live_while_its_file_is_and_gone_after() {
        let Some((dir, lookup)) = scratch() else {
            eprintln!("skipped: needs root and ext4 in {}", std::env::temp_dir().display());
            return;
        };
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        assert!(set_header(&path, 0x5eed));
        let ino = std::fs::metadata(&path).unwrap().ino();
        let key = FileKey::new(7, ino, 0x5eed);
        assert_eq!(lookup.liveness(&key), Liveness::Live);
        // Renamed anywhere on the file system: still live.
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let moved = dir.path().join("sub/g");
        std::fs::rename(&path, &moved).unwrap();
        assert_eq!(lookup.liveness(&key), Liveness::Live);
        // Another file's seed on the inode: not the key's file.
        assert_eq!(lookup.liveness(&FileKey::new(7, ino, 0x5eee)), Liveness::Gone);
        // Removed while open: cannot tell yet.
        let open = File::open(&moved).unwrap();
        std::fs::remove_file(&moved).unwrap();
        assert_eq!(lookup.liveness(&key), Liveness::Unknown);
        drop(open);
        assert_eq!(lookup.liveness(&key), Liveness::Gone);
        // A directory on the inode number, and an inode never used.
        let d = std::fs::metadata(dir.path().join("sub")).unwrap().ino();
        assert_eq!(lookup.liveness(&FileKey::new(7, d, 0x5eed)), Liveness::Gone);
        assert_eq!(lookup.liveness(&FileKey::new(7, 1 << 33, 1)), Liveness::Unknown);
    }
}
