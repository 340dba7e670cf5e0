// SPDX-License-Identifier: GPL-2.0

//! nfsd's hook table (`include/linux/nfsd_nfsp.h`): the trait the module
//! implements, the C trampolines, and the registration.

use core::ffi::{c_int, c_void};
use core::marker::PhantomData;
use core::net::SocketAddr;
use core::ptr;

use kernel::{
    bindings,
    error::{from_result, to_result},
    iov::{IovIterDest, IovIterSource},
    prelude::*,
    types::Opaque, //
};

use super::fops::{self, FileOps};
use super::net::{sockaddr_to_rust, NetRef};
use super::vfs::{Dentry, MetaFile};
use crate::proto::control::Space;

/// A READ reply an iod sends to the client in nfsd's place.
pub(crate) struct DirectReply<'a> {
    /// Where the call came from.
    pub(crate) client: SocketAddr,
    /// The address and port the call arrived on (the reply's source).
    pub(crate) server: SocketAddr,
    /// The reply as nfsd encoded it, up to the data.
    pub(crate) header: &'a [u8],
}

/// What the module does for nfsd; see `include/linux/nfsd_nfsp.h`.
pub(crate) trait Hooks {
    /// What the module keeps for each meta-file it took over.
    type Open: Send + Sync;
    /// The file operations of the files taken over, a `static`
    /// (`FileOps::new::<Self>()`).
    const FOPS: &'static FileOps;

    /// nfsd, serving `net`, opened a regular file of an nfsp export:
    /// `Some` takes it over (its data is on the iods), `None` leaves it a
    /// local file.
    fn open(net: NetRef, file: &MetaFile<'_>) -> Result<Option<Self::Open>>;
    /// Copies the `len` bytes of the file at `pos` (all below the size,
    /// `len <= to.len()`) into `to`; returns the bytes copied.
    fn read(
        open: &Self::Open,
        file: &MetaFile<'_>,
        pos: u64,
        len: usize,
        to: &mut IovIterDest<'_>,
    ) -> Result<usize>;
    /// Writes all of `from` at `pos`, and the size and times as a local
    /// write would ([`MetaFile::written_up_to`]); returns the bytes
    /// written.
    fn write(
        open: &Self::Open,
        file: &MetaFile<'_>,
        pos: u64,
        from: &mut IovIterSource<'_>,
    ) -> Result<usize>;
    /// Makes every written byte of the file durable.
    fn commit(open: &Self::Open, file: &MetaFile<'_>) -> Result;
    /// Has an iod answer a UDP READ directly.
    fn read_direct(
        net: NetRef,
        dentry: &Dentry<'_>,
        pos: u64,
        count: usize,
        reply: &DirectReply<'_>,
    ) -> Result;
    /// The file is about to be cut (or extended) to `size`, exactly when
    /// a client set it (`exact`), else only grown (its data reaches
    /// `size`); nfsd holds the inode lock ([`Dentry::locked`] would
    /// deadlock).
    fn truncate(net: NetRef, dentry: &Dentry<'_>, size: u64, exact: bool) -> Result;
    /// A name of the file is about to go; returns a cookie for
    /// `unlink_finish`, 0 for nothing to do.
    fn unlink_prepare(dentry: &Dentry<'_>) -> Result<usize>;
    /// The removal is over; `done` if it succeeded and is durable.
    fn unlink_finish(cookie: usize, done: bool);
    /// The space of the data of `net`'s nfsp exports; `None` keeps the
    /// meta-server's.
    fn space(net: NetRef) -> Option<Space>;
    /// The `ff_layout4` of a pNFS flexfiles layout of the whole file,
    /// naming devices of `fsid_idx`, encoded into `buf`; its length.
    /// `EAGAIN`: the client asks again later; other errors: it does its
    /// I/O through nfsd.
    /// `client` is the client's implementation name (EXCHANGE_ID).
    fn layout(
        net: NetRef,
        dentry: &Dentry<'_>,
        iomode: u32,
        fsid_idx: u64,
        client: &[u8],
        buf: &mut [u8],
    ) -> Result<usize>;
    /// A client returns its layouts of the file (read-write ones if `rw`),
    /// reporting `errors` (its `ff_layoutreturn4`); the size the data
    /// reached through a read-write layout (`EOPNOTSUPP`: nothing to do;
    /// `EAGAIN`: the client returns them later). nfsd holds the inode
    /// lock.
    fn layout_returned(net: NetRef, dentry: &Dentry<'_>, rw: bool, errors: &[u8]) -> Result<u64>;
    /// nfsd gave up recalling a layout of the file from a client: the
    /// iods must refuse every data-server filehandle handed out so far;
    /// then the size the data reached. nfsd holds the inode lock.
    fn fence(net: NetRef, dentry: &Dentry<'_>) -> Result<u64>;
    /// The `ff_device_addr4` of `device`, encoded into `buf`; its length
    /// (`ENOENT`: no such device any more).
    fn device(net: NetRef, device: u32, buf: &mut [u8]) -> Result<usize>;
    /// A control command was written to `/proc/fs/nfsd/nfsp` of `net`.
    /// `buf[..len]` is the command; the answer replaces it.
    fn control(net: NetRef, buf: &mut [u8], len: usize) -> Result<usize>;
}

/// The namespace and reply of a UDP READ that nfsd hands to the module.
///
/// # Safety
///
/// `rqstp` is a request nfsd is answering, with the reply header encoded
/// in `rq_res.head[0]` and a live transport, and stays so while the
/// returned reply is used.
unsafe fn direct_reply<'a>(rqstp: *const bindings::svc_rqst) -> Result<(NetRef, DirectReply<'a>)> {
    // SAFETY: by the caller, `rqstp` is valid.
    let rq = unsafe { &*rqstp };
    // SAFETY: a request's transport outlives it.
    let xprt = unsafe { &*rq.rq_xprt };
    // SAFETY: nfsd stores the caller's address, a valid `sockaddr_in(6)`.
    let client = unsafe { sockaddr_to_rust((&raw const rq.rq_addr).cast()) };
    // SAFETY: as above, the address the call was sent to.
    let to = unsafe { sockaddr_to_rust((&raw const rq.rq_daddr).cast()) };
    // SAFETY: the transport's bound address (its port: the transport may
    // be bound to a wildcard address).
    let local = unsafe { sockaddr_to_rust((&raw const xprt.xpt_local).cast()) };
    let (Some(client), Some(mut server), Some(local)) = (client, to, local) else {
        return Err(EAFNOSUPPORT);
    };
    server.set_port(local.port());
    let head = rq.rq_res.head[0];
    // SAFETY: the head kvec covers the reply nfsd encoded, unchanged while
    // the request is answered.
    let header = unsafe { core::slice::from_raw_parts(head.iov_base.cast::<u8>(), head.iov_len) };
    Ok((
        NetRef(xprt.xpt_net),
        DirectReply {
            client,
            server,
            header,
        },
    ))
}

/// Turns a `Result<usize>` into the `ssize_t` C expects.
pub(super) fn to_ssize(r: Result<usize>) -> isize {
    match r {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// A size or an errno, as nfsd's `loff_t` results.
fn to_loff(r: Result<u64>) -> bindings::loff_t {
    match r.and_then(|n| bindings::loff_t::try_from(n).map_err(|_| EFBIG)) {
        Ok(n) => n,
        Err(e) => bindings::loff_t::from(e.to_errno()),
    }
}

struct Trampolines<T: Hooks>(PhantomData<T>);

impl<T: Hooks> Trampolines<T> {
    unsafe extern "C" fn open(net: *mut bindings::net, file: *mut bindings::file) -> c_int {
        // SAFETY: nfsd passes a file it has just opened and holds.
        from_result(|| unsafe { fops::take_over::<T>(NetRef(net), file) }.map(|()| 0))
    }

    unsafe extern "C" fn read_direct(
        rqstp: *mut bindings::svc_rqst,
        dentry: *mut bindings::dentry,
        pos: bindings::loff_t,
        count: usize,
    ) {
        let d = Dentry {
            dentry,
            _borrow: PhantomData,
        };
        // SAFETY: nfsd passes the UDP READ it is answering, whose reply
        // header is encoded and whose transport is live, for the call.
        let r = unsafe { direct_reply(rqstp) }.and_then(|(net, reply)| {
            let pos = u64::try_from(pos).map_err(|_| EINVAL)?;
            T::read_direct(net, &d, pos, count, &reply)
        });
        // The client retransmits: nothing to tell nfsd.
        let _ = r;
    }

    unsafe extern "C" fn statfs(net: *mut bindings::net, stat: *mut bindings::kstatfs) {
        // SAFETY: nfsd passes the statistics it is about to encode.
        let stat = unsafe { &mut *stat };
        let Some(space) = T::space(NetRef(net)) else {
            return;
        };
        let unit = u64::try_from(stat.f_bsize).unwrap_or(0).max(1);
        stat.f_blocks = space.total / unit;
        stat.f_bfree = space.free / unit;
        stat.f_bavail = space.avail / unit;
    }

    unsafe extern "C" fn truncate(
        net: *mut bindings::net,
        dentry: *mut bindings::dentry,
        size: bindings::loff_t,
        exact: bool,
    ) -> c_int {
        let d = Dentry {
            dentry,
            _borrow: PhantomData,
        };
        from_result(|| {
            let size = u64::try_from(size).map_err(|_| EINVAL)?;
            T::truncate(NetRef(net), &d, size, exact).map(|()| 0)
        })
    }

    unsafe extern "C" fn unlink_prepare(
        dentry: *mut bindings::dentry,
        cookie: *mut *mut c_void,
    ) -> c_int {
        let d = Dentry {
            dentry,
            _borrow: PhantomData,
        };
        from_result(|| {
            let c = T::unlink_prepare(&d)?;
            // SAFETY: nfsd passes a valid out-pointer.
            unsafe { *cookie = c as *mut c_void };
            Ok(0)
        })
    }

    unsafe extern "C" fn unlink_finish(cookie: *mut c_void, done: bool) {
        T::unlink_finish(cookie as usize, done);
    }

    unsafe extern "C" fn layoutget(
        net: *mut bindings::net,
        dentry: *mut bindings::dentry,
        iomode: u32,
        fsid_idx: u64,
        client: *const kernel::ffi::c_char,
        client_len: usize,
        buf: *mut c_void,
        size: usize,
    ) -> isize {
        let d = Dentry {
            dentry,
            _borrow: PhantomData,
        };
        let client = if client.is_null() || client_len == 0 {
            &[][..]
        } else {
            // SAFETY: nfsd passes the client record's implementation name,
            // `client_len` bytes, kept while the client makes the call.
            unsafe { core::slice::from_raw_parts(client.cast::<u8>(), client_len) }
        };
        // SAFETY: nfsd passes a buffer of `size` writable bytes, ours
        // during the call.
        let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
        to_ssize(T::layout(NetRef(net), &d, iomode, fsid_idx, client, buf))
    }

    unsafe extern "C" fn layoutreturn(
        net: *mut bindings::net,
        dentry: *mut bindings::dentry,
        rw: bool,
        body: *const c_void,
        body_len: usize,
    ) -> bindings::loff_t {
        let d = Dentry {
            dentry,
            _borrow: PhantomData,
        };
        let errors = if body.is_null() || body_len == 0 {
            &[][..]
        } else {
            // SAFETY: nfsd passes the LAYOUTRETURN body it decoded,
            // `body_len` bytes of the request, kept during the call.
            unsafe { core::slice::from_raw_parts(body.cast::<u8>(), body_len) }
        };
        to_loff(T::layout_returned(NetRef(net), &d, rw, errors))
    }

    unsafe extern "C" fn fence(
        net: *mut bindings::net,
        dentry: *mut bindings::dentry,
    ) -> bindings::loff_t {
        let d = Dentry {
            dentry,
            _borrow: PhantomData,
        };
        to_loff(T::fence(NetRef(net), &d))
    }

    unsafe extern "C" fn getdeviceinfo(
        net: *mut bindings::net,
        device: u32,
        buf: *mut c_void,
        size: usize,
    ) -> isize {
        // SAFETY: as in `layoutget`.
        let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
        to_ssize(T::device(NetRef(net), device, buf))
    }

    unsafe extern "C" fn control(
        net: *mut bindings::net,
        buf: *mut kernel::ffi::c_char,
        len: usize,
        size: usize,
    ) -> isize {
        if len > size {
            return EINVAL.to_errno() as isize;
        }
        // SAFETY: nfsd's transaction buffer holds `size` writable bytes, the
        // first `len` of them the command, and is ours during the call.
        let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
        to_ssize(T::control(NetRef(net), buf, len))
    }

    const OPS: bindings::nfsd_nfsp_ops = bindings::nfsd_nfsp_ops {
        owner: ptr::null_mut(),
        fops: T::FOPS.as_ptr(),
        open: Some(Self::open),
        read_direct: Some(Self::read_direct),
        truncate: Some(Self::truncate),
        unlink_prepare: Some(Self::unlink_prepare),
        unlink_finish: Some(Self::unlink_finish),
        statfs: Some(Self::statfs),
        layoutget: Some(Self::layoutget),
        layoutreturn: Some(Self::layoutreturn),
        fence: Some(Self::fence),
        getdeviceinfo: Some(Self::getdeviceinfo),
        control: Some(Self::control),
    };
}

/// The module's registration with nfsd; unregisters on drop, after which
/// no hook runs any more (files taken over keep their own reference on
/// the module until they are closed).
#[pin_data(PinnedDrop)]
pub(crate) struct HooksRegistration {
    #[pin]
    ops: Opaque<bindings::nfsd_nfsp_ops>,
}

// SAFETY: the ops table is only read, by nfsd, from any thread.
unsafe impl Sync for HooksRegistration {}
// SAFETY: registering and unregistering may happen on any thread.
unsafe impl Send for HooksRegistration {}

impl HooksRegistration {
    /// Registers `T`'s hooks with nfsd.
    pub(crate) fn register<T: Hooks>(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            ops <- Opaque::try_ffi_init(|slot: *mut bindings::nfsd_nfsp_ops| {
                let mut ops = Trampolines::<T>::OPS;
                ops.owner = module.as_ptr();
                // SAFETY: `slot` is valid for writes and pinned for the
                // registration's life, as nfsd requires.
                unsafe {
                    slot.write(ops);
                    to_result(bindings::nfsd_nfsp_register(slot))
                }
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for HooksRegistration {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: the table was registered in `register`; unregistering
        // waits until no hook call is running.
        unsafe { bindings::nfsd_nfsp_unregister(self.ops.get()) };
    }
}

/// Takes a reference on the module, so that `rmmod` refuses to unload it.
pub(crate) fn module_get(module: &'static ThisModule) {
    // SAFETY: the module is live (this code runs in it).
    unsafe { bindings::__module_get(module.as_ptr()) };
}

/// Drops a reference taken by [`module_get`].
pub(crate) fn module_put(module: &'static ThisModule) {
    // SAFETY: pairs with an earlier `module_get`.
    unsafe { bindings::module_put(module.as_ptr()) };
}
