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
//!
//! A wrong "gone" deletes live data, so the lookup is only trusted where
//! it proved itself: the caller needs CAP_SYS_ADMIN (without it `trusted.*`
//! reads as absent, every file would look gone) and CAP_DAC_READ_SEARCH,
//! the export directory opens by handle, and files the walk found live
//! must come back live ([`InodeLookup::vouches_for`]); the kernel reports
//! an inode it fails to read (EIO, a bad checksum) as ESTALE too.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Context};
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

/// Capability numbers (include/uapi/linux/capability.h).
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_ADMIN: u32 = 21;

/// Whether this process has capability `cap` in effect (CapEff of
/// /proc/self/status).
fn has_capability(cap: u32) -> io::Result<bool> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .ok_or_else(|| io::Error::other("no CapEff line in /proc/self/status"))?;
    Ok(eff & (1u64 << cap) != 0)
}

/// Fails unless the headers can be read: without CAP_SYS_ADMIN
/// `trusted.nfsp` reads as absent and every file would look headerless.
pub fn require_header_access() -> anyhow::Result<()> {
    if !has_capability(CAP_SYS_ADMIN).context("reading the capabilities")? {
        bail!("reading the trusted.nfsp headers needs CAP_SYS_ADMIN (run as root)");
    }
    Ok(())
}

/// Looks inodes up on the file system holding an export directory.
pub struct InodeLookup {
    mount: File,
}

impl InodeLookup {
    /// For the file system of `dir`; None where inodes cannot be opened by
    /// number alone (not ext4, no CAP_DAC_READ_SEARCH, or the directory
    /// itself does not open by its inode number).
    pub fn new(dir: &Path) -> anyhow::Result<Option<Self>> {
        let mount = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        let fs = nix::sys::statfs::fstatfs(&mount)
            .with_context(|| format!("statfs {}", dir.display()))?;
        if fs.filesystem_type() != nix::sys::statfs::EXT4_SUPER_MAGIC
            || !has_capability(CAP_DAC_READ_SEARCH).context("reading the capabilities")?
        {
            return Ok(None);
        }
        let ino = mount.metadata().context("stat of the export")?.ino();
        let lookup = InodeLookup { mount };
        let opened = u32::try_from(ino)
            .ok()
            .and_then(|ino| lookup.open(ino).ok());
        let same = opened
            .map(File::from)
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.ino() == ino);
        Ok(same.then_some(lookup))
    }

    /// Whether every one of `keys` (files the walk found live) comes back
    /// live: the lookup works here as assumed.
    pub fn vouches_for<'a>(&self, keys: impl IntoIterator<Item = &'a FileKey>) -> bool {
        keys.into_iter().all(|k| self.liveness(k) == Liveness::Live)
    }

    /// The inode `ino` as an `O_PATH` descriptor: nothing is opened for
    /// real (a device node that took the number stays closed).
    fn open(&self, ino: u32) -> io::Result<OwnedFd> {
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
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Whether `key`'s file exists (needs CAP_DAC_READ_SEARCH).
    pub fn liveness(&self, key: &FileKey) -> Liveness {
        let Ok(ino) = u32::try_from(key.inode) else {
            return Liveness::Unknown;
        };
        let fd = match self.open(ino) {
            Ok(fd) => fd,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::ESTALE) | Some(libc::ENOENT) => Liveness::Gone,
                    _ => Liveness::Unknown,
                };
            }
        };
        let file = File::from(fd);
        let Ok(md) = file.metadata() else {
            return Liveness::Unknown;
        };
        if !md.is_file() {
            // A directory, symlink or device took the number.
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

/// The seed in the `trusted.nfsp` header of `file` (an `O_PATH`
/// descriptor, read through its /proc/self/fd link); None without a
/// valid one.
fn seed_of(file: &File) -> io::Result<Option<u64>> {
    let link = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(io::Error::other)?;
    let mut buf = [0u8; 256];
    // SAFETY: valid C strings, the buffer as long as the length passed.
    let n = unsafe {
        libc::getxattr(
            link.as_ptr(),
            c"trusted.nfsp".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    Ok(header_from(n, &buf)?.map(|h| h.seed))
}

/// The header from a `getxattr` family call's result `n` into `buf`: None
/// when the file has none (or not a valid one). Call it right after the
/// call: a negative `n` reads `errno`.
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
            libc::setxattr(
                c.as_ptr(),
                c"trusted.nfsp".as_ptr(),
                buf.as_ptr().cast(),
                n,
                0,
            )
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
            eprintln!(
                "skipped: needs root and ext4 in {}",
                std::env::temp_dir().display()
            );
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
        assert_eq!(
            lookup.liveness(&FileKey::new(7, ino, 0x5eee)),
            Liveness::Gone
        );
        // Removed while open: cannot tell yet.
        let open = File::open(&moved).unwrap();
        std::fs::remove_file(&moved).unwrap();
        assert_eq!(lookup.liveness(&key), Liveness::Unknown);
        drop(open);
        assert_eq!(lookup.liveness(&key), Liveness::Gone);
        // A directory on the inode number, and an inode never used.
        let d = std::fs::metadata(dir.path().join("sub")).unwrap().ino();
        assert_eq!(lookup.liveness(&FileKey::new(7, d, 0x5eed)), Liveness::Gone);
        assert_eq!(
            lookup.liveness(&FileKey::new(7, 1 << 33, 1)),
            Liveness::Unknown
        );
    }
}
