// SPDX-License-Identifier: GPL-2.0
//! UDP sockets bound to a foreign address (the meta-server's) with
//! IP_TRANSPARENT + IP_FREEBIND, so direct-mode replies leave with the
//! meta-server's address and port as source and are still fragmented by
//! the kernel like any UDP datagram. Needs CAP_NET_ADMIN (or CAP_NET_RAW).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::FromRawFd;
use std::sync::{Arc, Mutex};

/// Most cached sockets (one per meta-server address in practice).
const CACHE_MAX: usize = 64;

/// Set an integer socket option.
pub(crate) fn setopt_int(fd: i32, level: i32, name: i32, value: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is a valid socket we own; the option value is a c_int
    // living across the call, and we pass its exact size.
    let r = unsafe {
        libc::setsockopt(
            fd,
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

fn setopt(fd: i32, level: i32, name: i32) -> io::Result<()> {
    setopt_int(fd, level, name, 1)
}

/// Create a UDP socket bound to `source` even though `source` is not a
/// local address.
pub fn bind_transparent(source: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if source.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own; UdpSocket takes ownership and
    // closes it on drop (also on the error paths below).
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
    setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT)?;
    if source.is_ipv4() {
        setopt(fd, libc::SOL_IP, libc::IP_TRANSPARENT)?;
        setopt(fd, libc::SOL_IP, libc::IP_FREEBIND)?;
    } else {
        setopt(fd, libc::SOL_IPV6, libc::IPV6_TRANSPARENT)?;
        setopt(fd, libc::SOL_IPV6, libc::IPV6_FREEBIND)?;
    }
    bind(fd, source)?;
    Ok(sock)
}

fn bind(fd: i32, a: SocketAddr) -> io::Result<()> {
    let r = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sin is a valid sockaddr_in and we pass its size.
            unsafe {
                libc::bind(
                    fd,
                    &sin as *const libc::sockaddr_in as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sin6 is a valid sockaddr_in6 and we pass its size.
            unsafe {
                libc::bind(
                    fd,
                    &sin6 as *const libc::sockaddr_in6 as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
