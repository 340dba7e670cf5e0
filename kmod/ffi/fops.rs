// SPDX-License-Identifier: GPL-2.0

//! The file operations of the meta-files the module takes over: nfsd opens
//! a meta-file on its own file system, then the module's `open` hook
//! replaces the file's operations by these, so that every NFS version's
//! reads, writes, commits and splices reach the iods through the one open
//! file. Locks, leases (delegations) and attributes stay with the
//! meta-file's inode; what the table leaves out (mmap, fallocate, clone)
//! is refused by the VFS (`ENODEV`, `EOPNOTSUPP`), so nfsd answers
//! NFS4ERR_NOTSUPP instead of serving the meta-file's bytes.

use core::ffi::{
    c_int,
    c_void, //
};
use core::marker::PhantomData;

use kernel::{
    bindings,
    iov::{IovIterDest, IovIterSource},
    prelude::*,
    ModuleMetadata, //
};

use super::hooks::{to_ssize, Hooks};
use super::net::NetRef;
use super::vfs::MetaFile;

/// `IOCB_DSYNC` and `IOCB_SYNC` (`include/linux/fs.h`): `RWF_DSYNC` and
/// `RWF_SYNC`, whose `__force` casts bindgen does not evaluate.
const IOCB_DSYNC: c_int = 0x2;
const IOCB_SYNC: c_int = 0x4;

/// What a taken-over file's `private_data` points to.
struct Installed<P> {
    /// The file system's own operations, for `release` and `fsync` of the
    /// meta-file itself; the file's reference on their module moves here.
    orig: *const bindings::file_operations,
    /// The file system's own `private_data`, given back at `release`.
    orig_private: *mut c_void,
    open: P,
}

pub(super) struct MetaFileOps<T: Hooks>(PhantomData<T>);

/// The operations of taken-over meta-files, in a `static` of the crate
/// root (`FileOps::new::<Hooks>()`, named by `Hooks::FOPS`): nfsd tells a
/// taken-over file by its `f_op`, so the table needs one fixed address,
/// which a `const` does not have.
pub(crate) struct FileOps(bindings::file_operations);

// SAFETY: the table is never written after it is built; the VFS reads it
// from any thread.
unsafe impl Sync for FileOps {}

impl FileOps {
    /// The table for `T`'s hooks.
    pub(crate) const fn new<T: Hooks>() -> Self {
        FileOps(MetaFileOps::<T>::FOPS)
    }

    pub(super) const fn as_ptr(&'static self) -> *const bindings::file_operations {
        &raw const self.0
    }
}

/// Replaces the operations of `file`, just opened by nfsd, by the module's
/// if `T::open` takes it over.
///
/// # Safety
///
/// `file` must be a file nfsd has just opened and not yet used, held by
/// the caller for the call; nfsd calls this with a reference on the
/// module held.
pub(super) unsafe fn take_over<T: Hooks>(net: NetRef, file: *mut bindings::file) -> Result {
    let meta = MetaFile {
        file,
        _borrow: PhantomData,
    };
    let Some(open) = T::open(net, &meta)? else {
        return Ok(());
    };
    // SAFETY: `file` is live and not yet shared, so its operations and
    // private data may be set as `replace_fops()` does.
    unsafe {
        let orig = (*file).f_op;
        if orig == T::FOPS.as_ptr() {
            // Opened by nfsd once more (an NFSv4 OPEN's own file).
            return Ok(());
        }
        let installed = KBox::new(
            Installed {
                orig,
                orig_private: (*file).private_data,
                open,
            },
            GFP_KERNEL,
        )?;
        // The file's operations now hold the module, as `fops_get()`
        // would; nfsd's call holds it already, so this cannot fail.
        bindings::__module_get(<crate::LocalModule as ModuleMetadata>::THIS_MODULE.as_ptr());
        (*file).private_data = KBox::into_raw(installed).cast();
        (*file).f_op = T::FOPS.as_ptr();
    }
    Ok(())
}

impl<T: Hooks> MetaFileOps<T> {
    /// The state of a file taken over.
    ///
    /// # Safety
    ///
    /// `file` must be live and have these operations.
    unsafe fn installed<'a>(file: *mut bindings::file) -> &'a Installed<T::Open> {
        // SAFETY: `take_over` set `private_data` to an `Installed` that
        // lives until `release`, after every other operation.
        unsafe { &*(*file).private_data.cast::<Installed<T::Open>>() }
    }

    unsafe extern "C" fn read_iter(
        iocb: *mut bindings::kiocb,
        to: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: the VFS passes a live kiocb for one of our files.
        let (file, pos) = unsafe { ((*iocb).ki_filp, (*iocb).ki_pos) };
        let meta = MetaFile {
            file,
            _borrow: PhantomData,
        };
        // SAFETY: `file` has these operations.
        let inst = unsafe { Self::installed(file) };
        // SAFETY: the VFS passes a destination iterator, ours for the call.
        let to = unsafe { IovIterDest::from_raw(to) };
        let r = (|| {
            let pos = u64::try_from(pos).map_err(|_| EINVAL)?;
            let size = meta.size();
            if pos >= size {
                return Ok(0);
            }
            // Reads stop at the end of the file.
            let len = usize::try_from(size - pos)
                .unwrap_or(usize::MAX)
                .min(to.len());
            T::read(&inst.open, &meta, pos, len, to)
        })();
        if let Ok(n) = r {
            // SAFETY: the kiocb is ours for the call.
            unsafe { (*iocb).ki_pos = pos + n as i64 };
        }
        to_ssize(r)
    }

    unsafe extern "C" fn write_iter(
        iocb: *mut bindings::kiocb,
        from: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: the VFS passes a live kiocb for one of our files.
        let (file, pos, flags) = unsafe { ((*iocb).ki_filp, (*iocb).ki_pos, (*iocb).ki_flags) };
        let meta = MetaFile {
            file,
            _borrow: PhantomData,
        };
        // SAFETY: `file` has these operations.
        let inst = unsafe { Self::installed(file) };
        // SAFETY: the VFS passes a source iterator, ours for the call.
        let from = unsafe { IovIterSource::from_raw(from) };
        let r = (|| {
            let pos = u64::try_from(pos).map_err(|_| EINVAL)?;
            let n = T::write(&inst.open, &meta, pos, from)?;
            if flags & IOCB_DSYNC != 0 {
                // A stable write (NFS DATA_SYNC / FILE_SYNC).
                // SAFETY: `file` is live and has these operations.
                unsafe { Self::sync(file, flags & IOCB_SYNC == 0) }?;
            }
            Ok(n)
        })();
        if let Ok(n) = r {
            // SAFETY: the kiocb is ours for the call.
            unsafe { (*iocb).ki_pos = pos + n as i64 };
        }
        to_ssize(r)
    }

    /// Commits the data on the iods, then the meta-file (its size).
    ///
    /// # Safety
    ///
    /// `file` must be live and have these operations.
    unsafe fn sync(file: *mut bindings::file, datasync: bool) -> Result {
        let meta = MetaFile {
            file,
            _borrow: PhantomData,
        };
        // SAFETY: guaranteed by the caller.
        let inst = unsafe { Self::installed(file) };
        T::commit(&inst.open, &meta)?;
        // SAFETY: `orig` are the meta-file's own operations, for this file.
        let Some(fsync) = (unsafe { (*inst.orig).fsync }) else {
            return Ok(());
        };
        // SAFETY: as above; the whole range, as the size may have moved.
        kernel::error::to_result(unsafe { fsync(file, 0, i64::MAX, c_int::from(datasync)) })
    }

    unsafe extern "C" fn fsync(
        file: *mut bindings::file,
        _start: bindings::loff_t,
        _end: bindings::loff_t,
        datasync: c_int,
    ) -> c_int {
        // SAFETY: the VFS calls this for one of our files, held.
        match unsafe { Self::sync(file, datasync != 0) } {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    unsafe extern "C" fn release(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: the VFS calls `release` once, for a file with these
        // operations.
        let private = unsafe { (*file).private_data.cast::<Installed<T::Open>>() };
        if private.is_null() {
            return 0;
        }
        // SAFETY: `release` is the last operation on the file: the state
        // `take_over` leaked is ours again.
        let inst = unsafe { KBox::from_raw(private) };
        // SAFETY: as above; the file system sees its file as it left it.
        let r = unsafe {
            (*file).private_data = inst.orig_private;
            match (*inst.orig).release {
                Some(release) => release(inode, file),
                None => 0,
            }
        };
        // SAFETY: the reference the file held on the file system's module
        // (`fops_get()` at open), handed over in `take_over`.
        unsafe { bindings::module_put((*inst.orig).owner) };
        r
    }

    const FOPS: bindings::file_operations = bindings::file_operations {
        owner: <crate::LocalModule as ModuleMetadata>::THIS_MODULE.as_ptr(),
        // SEEK_DATA / SEEK_HOLE see the whole file as data: `cp` and
        // NFSv4.2 SEEK never mistake a sparse meta-file for holes.
        llseek: Some(bindings::generic_file_llseek),
        read_iter: Some(Self::read_iter),
        write_iter: Some(Self::write_iter),
        splice_read: Some(bindings::copy_splice_read),
        splice_write: Some(bindings::iter_file_splice_write),
        fsync: Some(Self::fsync),
        release: Some(Self::release),
        setlease: Some(bindings::generic_setlease),
        ..pin_init::zeroed()
    };
}
