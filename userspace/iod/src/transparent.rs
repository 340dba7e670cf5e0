// SPDX-License-Identifier: GPL-2.0
//! UDP sockets bound to a foreign address (the meta-server's) with
//! IP_TRANSPARENT + IP_FREEBIND, so direct-mode replies leave with the
//! meta-server's address and port as source and are still fragmented by
//! the kernel like any UDP datagram. Needs CAP_NET_ADMIN (or CAP_NET_RAW).
//!
//! No SO_REUSEADDR / SO_REUSEPORT: with them another local socket could
//! bind the same foreign address and port (and, with REUSEPORT, share the
//! datagrams sent to it). The socket is only ever sent on.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6,
};

/// Most cached sockets (one per meta-server address in practice).
const CACHE_MAX: usize = 64;

/// Set an integer socket option nix has no wrapper for.
pub(crate) fn setopt_int(
    fd: &impl AsFd,
    level: i32,
    name: i32,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: fd is a valid socket borrowed for the call; the option value
    // is a c_int living across the call, and we pass its exact size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Create a UDP socket bound to `source` even though `source` is not a
/// local address.
pub fn bind_transparent(source: SocketAddr) -> io::Result<UdpSocket> {
    let family = if source.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd: OwnedFd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    match source {
        SocketAddr::V4(v4) => {
            setsockopt(&fd, sockopt::IpTransparent, &true)?;
            setsockopt(&fd, sockopt::IpFreebind, &true)?;
            bind(fd.as_raw_fd(), &SockaddrIn::from(v4))?;
        }
        SocketAddr::V6(v6) => {
            // nix has no IPv6 variants of these two.
            setopt_int(&fd, libc::SOL_IPV6, libc::IPV6_TRANSPARENT, 1)?;
            setopt_int(&fd, libc::SOL_IPV6, libc::IPV6_FREEBIND, 1)?;
            bind(fd.as_raw_fd(), &SockaddrIn6::from(v6))?;
        }
    }
    Ok(UdpSocket::from(fd))
}

/// Small cache of transparent sockets keyed by source address.
#[derive(Default)]
pub struct TransparentCache {
    map: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
}

impl TransparentCache {
    /// The socket bound to `source` (created on first use).
    pub fn get(&self, source: SocketAddr) -> io::Result<Arc<UdpSocket>> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = m.get(&source) {
            return Ok(Arc::clone(s));
        }
        if m.len() >= CACHE_MAX {
            m.clear();
        }
        let s = Arc::new(bind_transparent(source)?);
        m.insert(source, Arc::clone(&s));
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::getsockopt;

    /// The transparent socket has no address-sharing options (needs
    /// CAP_NET_ADMIN: skipped without it).
    #[test]
    fn no_reuse_options() {
        let src: SocketAddr = "192.0.2.1:2049".parse().unwrap();
        let s = match bind_transparent(src) {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                eprintln!("SKIPPED: no CAP_NET_ADMIN for IP_TRANSPARENT");
                return;
            }
            Err(e) => panic!("bind_transparent: {e}"),
        };
        assert_eq!(s.local_addr().unwrap(), src);
        assert!(getsockopt(&s, sockopt::IpTransparent).unwrap());
        assert!(!getsockopt(&s, sockopt::ReuseAddr).unwrap());
        assert!(!getsockopt(&s, sockopt::ReusePort).unwrap());
        // a second bind of the same foreign address fails (no sharing)
        assert!(bind_transparent(src).is_err());
    }
}
