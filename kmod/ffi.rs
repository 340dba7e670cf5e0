// SPDX-License-Identifier: GPL-2.0

//! Every raw C interface the module uses, each behind a safe wrapper: nfsd's
//! hook table (`include/linux/nfsd_nfsp.h`), kernel UDP sockets, the
//! meta-file's inode and extended attributes. Nothing outside this file
//! touches `bindings::` or writes `unsafe`.

use core::ffi::{c_int, c_void};
use core::marker::PhantomData;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use core::ptr;

use kernel::{
    bindings,
    error::{from_result, to_result},
    iov::{IovIterDest, IovIterSource},
    prelude::*,
    types::Opaque,
};

/// Converts a C `struct sockaddr` (IPv4 or IPv6) into a Rust address.
///
/// # Safety
///
/// `sa` must be null or point to a valid `struct sockaddr_in` or
/// `struct sockaddr_in6` (as told by its family).
unsafe fn sockaddr_to_rust(sa: *const bindings::sockaddr) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `sa` is a valid socket address.
    let family = u32::from(unsafe { (*sa).sa_family });
    match family {
        bindings::AF_INET => {
            // SAFETY: the family says this is a `sockaddr_in`.
            let sin = unsafe { &*sa.cast::<bindings::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        bindings::AF_INET6 => {
            // SAFETY: the family says this is a `sockaddr_in6`, whose
            // address is 16 plain bytes.
            let sin6 = unsafe { &*sa.cast::<bindings::sockaddr_in6>() };
            // SAFETY: every member of the address union is plain bytes.
            let octets: [u8; 16] = unsafe { sin6.sin6_addr.in6_u.u6_addr8 };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(octets),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A C socket address built from a Rust one.
struct RawSockaddr {
    storage: bindings::__kernel_sockaddr_storage,
    len: c_int,
}

impl RawSockaddr {
    fn new(addr: &SocketAddr) -> Self {
        let mut raw = RawSockaddr {
            // SAFETY: all-zero bytes are a valid `sockaddr_storage`.
            storage: unsafe { core::mem::zeroed() },
            len: 0,
        };
        let base = ptr::from_mut(&mut raw.storage).cast::<u8>();
        match addr {
            SocketAddr::V4(a) => {
                let sin = bindings::sockaddr_in {
                    sin_family: bindings::AF_INET as _,
                    sin_port: a.port().to_be(),
                    sin_addr: bindings::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    // SAFETY: padding, all-zero is valid.
                    ..unsafe { core::mem::zeroed() }
                };
                // SAFETY: `sockaddr_storage` is larger than `sockaddr_in`
                // and suitably aligned for it.
                unsafe { ptr::write(base.cast::<bindings::sockaddr_in>(), sin) };
                raw.len = core::mem::size_of::<bindings::sockaddr_in>() as c_int;
            }
            SocketAddr::V6(a) => {
                // SAFETY: all-zero bytes are a valid `sockaddr_in6`.
                let mut sin6: bindings::sockaddr_in6 = unsafe { core::mem::zeroed() };
                sin6.sin6_family = bindings::AF_INET6 as _;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo().to_be();
                sin6.sin6_addr.in6_u.u6_addr8 = a.ip().octets();
                sin6.sin6_scope_id = a.scope_id();
                // SAFETY: `sockaddr_storage` is larger than `sockaddr_in6`
                // and suitably aligned for it.
                unsafe { ptr::write(base.cast::<bindings::sockaddr_in6>(), sin6) };
                raw.len = core::mem::size_of::<bindings::sockaddr_in6>() as c_int;
            }
        }
        raw
    }

    fn as_ptr(&mut self) -> *mut bindings::sockaddr {
        ptr::from_mut(&mut self.storage).cast()
    }
}

/// A network namespace, kept alive by the socket that anchors it.
pub(crate) struct NetRef(*mut bindings::net);

// SAFETY: a `struct net` may be used from any thread; the pointer is only
// dereferenced by kernel functions that take their own locks.
unsafe impl Send for NetRef {}
// SAFETY: as above, shared use is what the kernel does with it.
unsafe impl Sync for NetRef {}

impl NetRef {
    /// Whether both name the same network namespace.
    pub(crate) fn same(&self, other: &NetRef) -> bool {
        self.0 == other.0
    }
}

/// A kernel UDP socket.
pub(crate) struct UdpSocket {
    sock: *mut bindings::socket,
}

// SAFETY: kernel sockets may be used from any thread; sendmsg/recvmsg lock
// the socket themselves.
unsafe impl Send for UdpSocket {}
// SAFETY: as above.
unsafe impl Sync for UdpSocket {}

impl UdpSocket {
    /// Creates a socket of `net` for the family of `like`, bound to an
    /// ephemeral port on every address.
    pub(crate) fn new(net: &NetRef, like: &SocketAddr) -> Result<Self> {
        let family = if like.is_ipv4() {
            bindings::AF_INET
        } else {
            bindings::AF_INET6
        };
        let mut sock: *mut bindings::socket = ptr::null_mut();
        // SAFETY: `net` is a live namespace (anchored by the viod table) and
        // `sock` is a valid out-pointer.
        to_result(unsafe {
            bindings::sock_create_kern(
                net.0,
                family as c_int,
                bindings::sock_type_SOCK_DGRAM as c_int,
                bindings::IPPROTO_UDP as c_int,
                &mut sock,
            )
        })?;
        let socket = UdpSocket { sock };
        let any = match like {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        };
        let mut raw = RawSockaddr::new(&any);
        // SAFETY: `sock` is a live socket and `raw` a valid address of
        // `raw.len` bytes.
        to_result(unsafe { bindings::kernel_bind(socket.sock, raw.as_ptr().cast(), raw.len) })?;
        Ok(socket)
    }

    /// Makes the socket hold a reference on its network namespace, so that
    /// the namespace outlives it (kernel sockets do not by default).
    pub(crate) fn pin_net(&self) -> NetRef {
        // SAFETY: `self.sock` is live and has a `struct sock`; upgrading a
        // kernel socket's namespace reference is what the function is for.
        unsafe {
            let sk = (*self.sock).sk;
            bindings::sk_net_refcnt_upgrade(sk);
            NetRef((*sk).__sk_common.skc_net.net)
        }
    }

    /// Sets the receive buffer size: the answers to every stripe of a
    /// request arrive at once.
    pub(crate) fn set_recv_buffer(&self, bytes: i32) {
        // SAFETY: `self.sock` is live and has a `struct sock`.
        unsafe { bindings::sock_set_rcvbuf((*self.sock).sk, bytes) };
    }

    /// Sets how long [`UdpSocket::recv`] waits for a datagram.
    pub(crate) fn set_recv_timeout_ms(&self, ms: u32) {
        // SAFETY: the socket is private to its owner until it is used, so
        // nothing reads `sk_rcvtimeo` concurrently.
        unsafe {
            let jiffies = bindings::__msecs_to_jiffies(ms);
            (*(*self.sock).sk).sk_rcvtimeo = jiffies as _;
        }
    }

    /// The local port (the socket is bound).
    pub(crate) fn local_port(&self, like: &SocketAddr) -> Result<u16> {
        let mut raw = RawSockaddr::new(like);
        // SAFETY: `raw` has room for any address of the socket's family.
        let len = unsafe { bindings::kernel_getsockname(self.sock, raw.as_ptr()) };
        to_result(len)?;
        // SAFETY: the kernel filled `raw` with an address of the family.
        let addr = unsafe { sockaddr_to_rust(raw.as_ptr()) }.ok_or(EINVAL)?;
        Ok(addr.port())
    }

    /// The local address the kernel picks to reach `peer`.
    pub(crate) fn source_for(net: &NetRef, peer: &SocketAddr) -> Result<IpAddr> {
        let socket = UdpSocket::new(net, peer)?;
        let mut raw = RawSockaddr::new(peer);
        // SAFETY: `raw` is a valid address of `raw.len` bytes.
        to_result(unsafe { bindings::kernel_connect(socket.sock, raw.as_ptr().cast(), raw.len, 0) })?;
        // SAFETY: `raw` has room for any address of the socket's family.
        to_result(unsafe { bindings::kernel_getsockname(socket.sock, raw.as_ptr()) })?;
        // SAFETY: the kernel filled `raw` with an address of the family.
        let local = unsafe { sockaddr_to_rust(raw.as_ptr()) }.ok_or(EINVAL)?;
        Ok(local.ip())
    }

    /// Sends one datagram.
    pub(crate) fn send_to(&self, data: &[u8], to: &SocketAddr) -> Result {
        let mut raw = RawSockaddr::new(to);
        // SAFETY: all-zero is a valid empty `msghdr`.
        let mut msg: bindings::msghdr = unsafe { core::mem::zeroed() };
        msg.msg_name = raw.as_ptr().cast();
        msg.msg_namelen = raw.len;
        let mut vec = bindings::kvec {
            iov_base: data.as_ptr().cast_mut().cast(),
            iov_len: data.len(),
        };
        // SAFETY: `msg` names a valid address, `vec` covers `data`, which the
        // kernel only reads.
        let sent = unsafe { bindings::kernel_sendmsg(self.sock, &mut msg, &mut vec, 1, data.len()) };
        to_result(sent)?;
        if sent as usize != data.len() {
            return Err(EIO);
        }
        Ok(())
    }

    /// Receives one datagram into `buf` and tells who sent it, waiting at
    /// most the receive timeout (not at all with `dont_wait`: `EAGAIN`); a
    /// datagram larger than `buf` is an error (`EMSGSIZE`).
    pub(crate) fn recv_from(&self, buf: &mut [u8], dont_wait: bool) -> Result<(usize, SocketAddr)> {
        // Any address of the family fits the storage.
        let mut raw = RawSockaddr::new(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0));
        // SAFETY: all-zero is a valid empty `msghdr`.
        let mut msg: bindings::msghdr = unsafe { core::mem::zeroed() };
        msg.msg_name = raw.as_ptr().cast();
        msg.msg_namelen = core::mem::size_of::<bindings::__kernel_sockaddr_storage>() as c_int;
        let mut vec = bindings::kvec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let flags = if dont_wait { bindings::MSG_DONTWAIT as c_int } else { 0 };
        // SAFETY: `vec` covers `buf`, which is valid for writes, and
        // `msg_name` points to storage large enough for any address.
        let got = unsafe {
            bindings::kernel_recvmsg(self.sock, &mut msg, &mut vec, 1, buf.len(), flags)
        };
        to_result(got)?;
        if msg.msg_flags & bindings::MSG_TRUNC != 0 {
            return Err(EMSGSIZE);
        }
        if msg.msg_namelen <= 0 {
            return Err(EINVAL);
        }
        // SAFETY: `raw` was a valid (zeroed IPv6) address before the call
        // and the kernel wrote the sender's address over its first
        // `msg_namelen` bytes, so it holds a valid address of its family.
        let from = unsafe { sockaddr_to_rust(raw.as_ptr()) }.ok_or(EINVAL)?;
        Ok((got as usize, from))
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        // SAFETY: the socket was created by `sock_create_kern` and is
        // released exactly once.
        unsafe { bindings::sock_release(self.sock) };
    }
}

/// Returns 64 random bits.
pub(crate) fn random_u64() -> u64 {
    // SAFETY: no preconditions.
    unsafe { bindings::get_random_u64() }
}

/// A dentry of a regular file on an nfsp export, borrowed from nfsd for
/// the duration of a hook call.
pub(crate) struct Dentry<'a> {
    dentry: *mut bindings::dentry,
    _borrow: PhantomData<&'a bindings::dentry>,
}

/// Name of the extended attribute holding a meta-file's header.
const HEADER_XATTR: &CStr = c"trusted.nfsp";

impl Dentry<'_> {
    fn inode(&self) -> *mut bindings::inode {
        // SAFETY: nfsd passes positive dentries of regular files.
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

    /// Reads the header attribute into `buf`, returning its length.
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

    /// Writes the header attribute (creating or replacing it).
    pub(crate) fn set_header(&self, value: &[u8]) -> Result {
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
                0,
            )
        })
    }
}

/// The open meta-file nfsd reads or writes through.
pub(crate) struct MetaFile<'a> {
    file: *mut bindings::file,
    _borrow: PhantomData<&'a bindings::file>,
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
}

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
    /// A regular file was created on an nfsp export.
    fn create(dentry: &Dentry<'_>) -> Result;
    /// Fills `to` with the file's bytes from `pos` (within the real size).
    fn read(file: &MetaFile<'_>, pos: u64, to: &mut IovIterDest<'_>) -> Result<usize>;
    /// Has an iod answer a UDP READ directly.
    fn read_direct(dentry: &Dentry<'_>, pos: u64, count: usize, reply: &DirectReply<'_>) -> Result;
    /// Writes `from` at `pos`; returns the bytes written.
    fn write(file: &MetaFile<'_>, pos: u64, from: &mut IovIterSource<'_>) -> Result<usize>;
    /// Makes every written byte of the file durable.
    fn commit(file: &MetaFile<'_>) -> Result;
    /// The file is about to be cut (or extended) to `size`.
    fn truncate(dentry: &Dentry<'_>, size: u64) -> Result;
    /// A name of the file is about to go; returns a cookie for `unlink_finish`.
    fn unlink_prepare(dentry: &Dentry<'_>) -> Result<usize>;
    /// The unlink is over; `last_link_gone` when the data must go.
    fn unlink_finish(cookie: usize, last_link_gone: bool);
    /// A control command was written to `/proc/fs/nfsd/nfsp` of `net`.
    /// `buf[..len]` is the command; the answer replaces it.
    fn control(net: NetRef, buf: &mut [u8], len: usize) -> Result<usize>;
}

/// Turns a `Result<usize>` into the `ssize_t` nfsd expects.
fn to_ssize(r: Result<usize>) -> isize {
    match r {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

struct Trampolines<T: Hooks>(PhantomData<T>);

impl<T: Hooks> Trampolines<T> {
    unsafe extern "C" fn create(dentry: *mut bindings::dentry) -> c_int {
        let d = Dentry {
            dentry,
            _borrow: PhantomData,
        };
        from_result(|| T::create(&d).map(|()| 0))
    }

    unsafe extern "C" fn read(
        file: *mut bindings::file,
        pos: bindings::loff_t,
        to: *mut bindings::iov_iter,
    ) -> isize {
        let f = MetaFile {
            file,
            _borrow: PhantomData,
        };
        // SAFETY: nfsd passes a destination iterator over its reply pages,
        // used only through this reference during the call.
        let to = unsafe { IovIterDest::from_raw(to) };
        to_ssize(u64::try_from(pos).map_err(|_| EINVAL).and_then(|p| T::read(&f, p, to)))
    }

    unsafe extern "C" fn read_direct(
        dentry: *mut bindings::dentry,
        pos: bindings::loff_t,
        count: usize,
        reply: *const bindings::nfsd_nfsp_direct,
    ) -> c_int {
        from_result(|| {
            let d = Dentry {
                dentry,
                _borrow: PhantomData,
            };
            // SAFETY: nfsd passes a valid reply description for the call.
            let r = unsafe { &*reply };
            // SAFETY: nfsd's addresses are valid `sockaddr_in(6)`s.
            let client = unsafe { sockaddr_to_rust(r.client) }.ok_or(EAFNOSUPPORT)?;
            // SAFETY: as above.
            let server = unsafe { sockaddr_to_rust(r.server) }.ok_or(EAFNOSUPPORT)?;
            // SAFETY: `header` covers `header_len` bytes of nfsd's reply
            // buffer, unchanged during the call.
            let header = unsafe { core::slice::from_raw_parts(r.header.cast::<u8>(), r.header_len) };
            let reply = DirectReply {
                client,
                server,
                header,
            };
            let pos = u64::try_from(pos).map_err(|_| EINVAL)?;
            T::read_direct(&d, pos, count, &reply).map(|()| 0)
        })
    }

    unsafe extern "C" fn write(
        file: *mut bindings::file,
        pos: bindings::loff_t,
        from: *mut bindings::iov_iter,
    ) -> isize {
        let f = MetaFile {
            file,
            _borrow: PhantomData,
        };
        // SAFETY: nfsd passes a source iterator over the WRITE payload,
        // used only through this reference during the call.
        let from = unsafe { IovIterSource::from_raw(from) };
        to_ssize(u64::try_from(pos).map_err(|_| EINVAL).and_then(|p| T::write(&f, p, from)))
    }

    unsafe extern "C" fn commit(file: *mut bindings::file) -> c_int {
        let f = MetaFile {
            file,
            _borrow: PhantomData,
        };
        from_result(|| T::commit(&f).map(|()| 0))
    }

    unsafe extern "C" fn truncate(dentry: *mut bindings::dentry, size: bindings::loff_t) -> c_int {
        let d = Dentry {
            dentry,
            _borrow: PhantomData,
        };
        from_result(|| {
            let size = u64::try_from(size).map_err(|_| EINVAL)?;
            T::truncate(&d, size).map(|()| 0)
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

    unsafe extern "C" fn unlink_finish(cookie: *mut c_void, last_link_gone: bool) {
        T::unlink_finish(cookie as usize, last_link_gone);
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
        create: Some(Self::create),
        read: Some(Self::read),
        read_direct: Some(Self::read_direct),
        write: Some(Self::write),
        commit: Some(Self::commit),
        truncate: Some(Self::truncate),
        unlink_prepare: Some(Self::unlink_prepare),
        unlink_finish: Some(Self::unlink_finish),
        control: Some(Self::control),
    };
}

/// The module's registration with nfsd; unregisters on drop, after which
/// no hook runs any more.
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
