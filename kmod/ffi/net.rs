// SPDX-License-Identifier: GPL-2.0

//! Kernel UDP sockets, socket addresses and network namespaces: how the
//! module talks to the iods.

use core::ffi::c_int;
use core::net::{
    IpAddr,
    Ipv4Addr,
    Ipv6Addr,
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6, //
};
use core::ptr;

use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    types::Opaque, //
};

/// Converts a C `struct sockaddr` (IPv4 or IPv6) into a Rust address.
///
/// # Safety
///
/// `sa` must be null or point to a valid `struct sockaddr_in` or
/// `struct sockaddr_in6` (as told by its family).
pub(super) unsafe fn sockaddr_to_rust(sa: *const bindings::sockaddr) -> Option<SocketAddr> {
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
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
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

/// A network namespace, named by nfsd (the one an nfsd instance serves).
///
/// It holds no reference: the module's state for a namespace, sockets
/// included, goes when the namespace exits ([`PernetRegistration`]), and
/// the namespace is live until then.
#[derive(Clone, Copy)]
pub(crate) struct NetRef(pub(super) *mut bindings::net);

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

    /// Gives nfsd's instance in this namespace a new write verifier:
    /// clients send again every write not committed yet.
    pub(crate) fn reset_write_verifier(&self) {
        // SAFETY: the namespace is live while the module keeps state for
        // it (see the type's comment), and nfsd's per-net data with it.
        unsafe { bindings::nfsd_nfsp_reset_write_verifier(self.0) };
    }
}

/// What the module does when a network namespace goes away.
pub(crate) trait NetExit {
    /// `net` is exiting: drop everything kept for it (nfsd no longer runs
    /// there).
    fn net_exit(net: NetRef);
}

/// The module's `pernet_operations`; unregistering runs the exit for
/// every namespace left.
#[pin_data(PinnedDrop)]
pub(crate) struct PernetRegistration {
    #[pin]
    ops: Opaque<bindings::pernet_operations>,
}

// SAFETY: the kernel reads the table from any thread.
unsafe impl Sync for PernetRegistration {}
// SAFETY: registering and unregistering may happen on any thread.
unsafe impl Send for PernetRegistration {}

impl PernetRegistration {
    unsafe extern "C" fn exit<T: NetExit>(net: *mut bindings::net) {
        T::net_exit(NetRef(net));
    }

    /// Registers `T`'s exit hook.
    pub(crate) fn register<T: NetExit>() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            ops <- Opaque::try_ffi_init(|slot: *mut bindings::pernet_operations| {
                // SAFETY: `slot` is valid for writes and pinned for the
                // registration's life; all-zero is an empty table (no
                // per-namespace storage, no init).
                unsafe {
                    slot.write(core::mem::zeroed());
                    (*slot).exit = Some(Self::exit::<T>);
                    to_result(bindings::register_pernet_subsys(slot))
                }
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for PernetRegistration {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered in `register`.
        unsafe { bindings::unregister_pernet_subsys(self.ops.get()) };
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
        // SAFETY: `net` is a live namespace (the module drops its sockets
        // when it exits) and `sock` is a valid out-pointer.
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
        to_result(unsafe {
            bindings::kernel_connect(socket.sock, raw.as_ptr().cast(), raw.len, 0)
        })?;
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
        let sent =
            unsafe { bindings::kernel_sendmsg(self.sock, &mut msg, &mut vec, 1, data.len()) };
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
        let flags = if dont_wait {
            bindings::MSG_DONTWAIT as c_int
        } else {
            0
        };
        // SAFETY: `vec` covers `buf`, which is valid for writes, and
        // `msg_name` points to storage large enough for any address.
        let got =
            unsafe { bindings::kernel_recvmsg(self.sock, &mut msg, &mut vec, 1, buf.len(), flags) };
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
