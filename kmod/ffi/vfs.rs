// SPDX-License-Identifier: GPL-2.0

//! Meta-files as the VFS sees them: dentries, inodes, the open file, the
//! header's extended attribute, the size and the times.

use core::ffi::c_int;
use core::marker::PhantomData;
use core::ptr;

use kernel::{
    bindings,
    error::to_result,
    prelude::*, //
};

/// Name of the extended attribute holding a meta-file's header.
const HEADER_XATTR: &CStr = c"trusted.nfsp";

/// A dentry of a regular file on an nfsp export, borrowed from nfsd for
/// the duration of a hook call.
pub(crate) struct Dentry<'a> {
    pub(super) dentry: *mut bindings::dentry,
    pub(super) _borrow: PhantomData<&'a bindings::dentry>,
}

impl Dentry<'_> {
    fn inode(&self) -> *mut bindings::inode {
        // SAFETY: nfsd passes positive dentries of regular files and holds
        // them for the call.
        unsafe { (*self.dentry).d_inode }
    }

    /// The inode number of the meta-file.
    pub(crate) fn ino(&self) -> u64 {
        // SAFETY: the inode is live while the dentry is borrowed.
        unsafe { (*self.inode()).i_ino as u64 }
    }

    /// The meta-file's size, which is the real size of the file.
    pub(crate) fn size(&self) -> u64 {
        // SAFETY: the inode is live; a 64-bit load of `i_size` is what
        // `i_size_read()` does on 64-bit machines.
        let size = unsafe { ptr::read_volatile(&raw const (*self.inode()).i_size) };
        u64::try_from(size).unwrap_or(0)
    }

    /// The UUID of the file system holding the meta-file.
    pub(crate) fn fs_uuid(&self) -> [u8; 16] {
        // SAFETY: the super block outlives its inodes.
        unsafe { (*(*self.inode()).i_sb).s_uuid.b }
    }

    /// A counted reference on the inode, valid after the dentry goes.
    pub(crate) fn hold_inode(&self) -> InodeRef {
        let inode = self.inode();
        // SAFETY: the inode is live (the dentry holds it), so taking one
        // more reference is allowed.
        unsafe { bindings::ihold(inode) };
        InodeRef { inode }
    }

    /// Reads the header attribute into `buf`, returning its length;
    /// `ENODATA` if the file has none.
    pub(crate) fn get_header(&self, buf: &mut [u8]) -> Result<usize> {
        // SAFETY: the dentry and inode are live, `buf` is valid for
        // `buf.len()` bytes; `__vfs_getxattr` skips permission checks, which
        // is right: the client's credentials have been checked by nfsd.
        let len = unsafe {
            bindings::__vfs_getxattr(
                self.dentry,
                self.inode(),
                HEADER_XATTR.as_char_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        to_result(len as c_int)?;
        Ok(len as usize)
    }

    /// Creates the header attribute; `EEXIST` if the file has one.
    pub(crate) fn create_header(&self, value: &[u8]) -> Result {
        self.set_header(value, bindings::XATTR_CREATE)
    }

    /// Replaces the header attribute; `ENODATA` if the file has none.
    pub(crate) fn replace_header(&self, value: &[u8]) -> Result {
        self.set_header(value, bindings::XATTR_REPLACE)
    }

    /// Makes the meta-file's metadata (header, size) durable, as nfsd
    /// does before it answers a change.
    pub(crate) fn commit_metadata(&self) -> Result {
        // SAFETY: the dentry is positive and live for the borrow.
        to_result(unsafe { bindings::nfsd_nfsp_commit_metadata(self.dentry) })
    }

    fn set_header(&self, value: &[u8], flags: u32) -> Result {
        // SAFETY: as for `get_header`; `nop_mnt_idmap` is the identity
        // mapping, correct for a kernel-internal write.
        to_result(unsafe {
            bindings::__vfs_setxattr(
                &raw mut bindings::nop_mnt_idmap,
                self.dentry,
                self.inode(),
                HEADER_XATTR.as_char_ptr(),
                value.as_ptr().cast(),
                value.len(),
                flags as c_int,
            )
        })
    }

    /// Runs `f` with the inode locked (`inode_lock()`), so that nothing
    /// else changes the header or the size meanwhile.
    pub(crate) fn locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let inode = self.inode();
        // SAFETY: the inode is live; `i_rwsem` is its lock, which no
        // caller of the hooks holds (nfsd calls them unlocked).
        unsafe { bindings::down_write(&raw mut (*inode).i_rwsem) };
        let r = f();
        // SAFETY: taken just above.
        unsafe { bindings::up_write(&raw mut (*inode).i_rwsem) };
        r
    }
}

/// A counted reference on an inode (`ihold()` / `iput()`).
pub(crate) struct InodeRef {
    inode: *mut bindings::inode,
}

// SAFETY: inode references may be dropped and read from any thread.
unsafe impl Send for InodeRef {}
// SAFETY: only atomic reads of the link count are done through `&self`.
unsafe impl Sync for InodeRef {}

impl InodeRef {
    /// Whether no directory entry links to the inode any more.
    pub(crate) fn unlinked(&self) -> bool {
        // SAFETY: the reference keeps the inode live; `i_nlink` is read
        // without lock as `inode->i_nlink == 0` tests are in the VFS.
        unsafe { ptr::read_volatile(&raw const (*self.inode).__bindgen_anon_1.i_nlink) == 0 }
    }
}

impl Drop for InodeRef {
    fn drop(&mut self) {
        // SAFETY: pairs with the `ihold()` in `Dentry::hold_inode`.
        unsafe { bindings::iput(self.inode) };
    }
}

/// A meta-file nfsd opened, borrowed for the duration of a file operation.
pub(crate) struct MetaFile<'a> {
    pub(super) file: *mut bindings::file,
    pub(super) _borrow: PhantomData<&'a bindings::file>,
}

impl<'a> MetaFile<'a> {
    /// Its dentry.
    pub(crate) fn dentry(&self) -> Dentry<'a> {
        Dentry {
            // SAFETY: an open file has a live path.
            dentry: unsafe { (*self.file).__bindgen_anon_1.f_path.dentry },
            _borrow: PhantomData,
        }
    }

    /// The file's size.
    pub(crate) fn size(&self) -> u64 {
        self.dentry().size()
    }

    /// After data was written up to `end`: under the inode lock, if
    /// `still_valid` (no cut came in between), extends the size to `end`
    /// if it is smaller and updates mtime, ctime and the change attribute,
    /// the way a local write does. Returns whether it did.
    pub(crate) fn written_up_to(
        &self,
        end: u64,
        still_valid: impl FnOnce() -> bool,
    ) -> Result<bool> {
        let dentry = self.dentry();
        let end = i64::try_from(end).map_err(|_| EFBIG)?;
        dentry.locked(|| {
            if !still_valid() {
                return Ok(false);
            }
            // SAFETY: all-zero is a valid empty `iattr`.
            let mut attr: bindings::iattr = unsafe { core::mem::zeroed() };
            attr.ia_valid = bindings::ATTR_MTIME | bindings::ATTR_CTIME;
            if u64::try_from(end).unwrap_or(0) > dentry.size() {
                attr.ia_valid |= bindings::ATTR_SIZE;
                attr.ia_size = end;
            }
            // SAFETY: the inode is locked, as `notify_change` requires, and
            // the write holds the file system's freeze protection.
            to_result(unsafe {
                bindings::notify_change(
                    &raw mut bindings::nop_mnt_idmap,
                    dentry.dentry,
                    &mut attr,
                    ptr::null_mut(),
                )
            })
            .map(|()| true)
        })
    }
}
