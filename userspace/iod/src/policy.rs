// SPDX-License-Identifier: GPL-2.0
//! Address discipline: whom an iod may send to, even on behalf of an
//! authenticated request. A stolen or misused key must not turn an iod
//! into a reflector (answers go back only to who asked), make it talk to
//! itself, or make it send the meta-server's address to anyone but NFS
//! clients.
//!
//! * The only allowed `source` of a direct reply is a configured
//!   meta-server NFS address (`--meta`), and datagrams arriving *from*
//!   such an address are dropped: they can only be our own transparent
//!   replies looping back.
//! * Chain members must be configured peers (`--peer`) and never this iod
//!   itself (its port on any of its local addresses). READ hops must be
//!   peers too; a hop naming this iod is served in place (its extent read
//!   and appended locally), never sent as a datagram to itself.
//! * A direct reply's client is neither a local address nor a peer's.
//! * A request whose datagram source is not a peer is a first hop: its
//!   origin must be the datagram's source, IP and port (every legitimate
//!   sender, the module and the user-space clients, sends from the socket
//!   whose address it names as origin; another port of the same host is
//!   another program).
//!
//! Addresses are compared in canonical form (IPv4-mapped IPv6 = IPv4).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

/// Default port of a `--meta` address given without one (NFS).
pub const NFS_PORT: u16 = 2049;

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A direct reply from an address that is not a configured meta-server.
    #[error("direct-reply source {0} is not a configured meta-server address")]
    NotMetaSource(SocketAddr),
    /// A hop or chain member that is not a configured peer.
    #[error("{0} is not a configured peer")]
    NotPeer(SocketAddr),
    /// A hop or chain member that is this iod.
    #[error("{0} is this iod")]
    IsSelf(SocketAddr),
    /// A direct-reply client that is a local or peer address (or no
    /// unicast address at all).
    #[error("direct-reply client {0} is a local, peer or non-unicast address")]
    BadClient(SocketAddr),
    /// A first-hop request whose origin is not its sender.
    #[error("origin {origin} is not the sender {src}")]
    OriginMismatch {
        /// The request's origin.
        origin: SocketAddr,
        /// The datagram's source.
        src: SocketAddr,
    },
}

fn canon(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// The host's own IP addresses (every interface, loopback included).
pub fn local_ips() -> HashSet<IpAddr> {
    let mut set = HashSet::new();
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => {
            for a in addrs {
                let Some(s) = a.address else { continue };
                if let Some(v4) = s.as_sockaddr_in() {
                    set.insert(IpAddr::V4(v4.ip()));
                } else if let Some(v6) = s.as_sockaddr_in6() {
                    set.insert(IpAddr::V6(v6.ip()).to_canonical());
                }
            }
        }
        Err(e) => {
            log::error!("getifaddrs: {e}: only loopback and the listen address count as local")
        }
    }
    set
}

/// The configured address rules.
#[derive(Debug)]
pub struct AddrPolicy {
    listen: SocketAddr,
    meta: Vec<SocketAddr>,
    peers: Vec<SocketAddr>,
    local: RwLock<Arc<HashSet<IpAddr>>>,
}

impl AddrPolicy {
    /// Rules for an iod bound to `listen`, with meta-server NFS addresses
    /// `meta` and cluster iods `peers` (this iod may be among them).
    pub fn new(listen: SocketAddr, meta: &[SocketAddr], peers: &[SocketAddr]) -> Self {
        let p = AddrPolicy {
            listen: canon(listen),
            meta: meta.iter().copied().map(canon).collect(),
            peers: peers.iter().copied().map(canon).collect(),
            local: RwLock::new(Arc::new(HashSet::new())),
        };
        p.refresh_local();
        p
    }

    /// Re-reads the host's addresses (they change: DHCP, fail-over IPs).
    pub fn refresh_local(&self) {
        let mut set = local_ips();
        set.insert(self.listen.ip());
        let new = Arc::new(set);
        let mut g = self.local.write().unwrap_or_else(|p| p.into_inner());
        *g = new;
    }

    fn local(&self) -> Arc<HashSet<IpAddr>> {
        Arc::clone(&self.local.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// True for an IP of this host (loopback and unspecified included).
    pub fn is_local_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback() || ip.is_unspecified() || self.local().contains(&ip)
    }

    /// True when `a` is one of the configured meta-server NFS addresses.
    pub fn is_meta(&self, a: SocketAddr) -> bool {
        self.meta.contains(&canon(a))
    }

    /// True when `a` is a configured peer iod.
    pub fn is_peer(&self, a: SocketAddr) -> bool {
        self.peers.contains(&canon(a))
    }

    /// True when `a` is this iod: its port on one of its addresses.
    pub fn is_self(&self, a: SocketAddr) -> bool {
        let a = canon(a);
        a == self.listen || (a.port() == self.listen.port() && self.is_local_ip(a.ip()))
    }

    /// A READ hop or chain member this iod may forward to.
    pub fn check_next(&self, a: SocketAddr) -> Result<(), Violation> {
        if self.is_self(a) {
            return Err(Violation::IsSelf(a));
        }
        if !self.is_peer(a) {
            return Err(Violation::NotPeer(a));
        }
        Ok(())
    }

    /// A READ hop: a peer, or this iod (served in place).
    pub fn check_hop(&self, a: SocketAddr) -> Result<(), Violation> {
        if self.is_self(a) || self.is_peer(a) {
            Ok(())
        } else {
            Err(Violation::NotPeer(a))
        }
    }

    /// The `source` of a direct reply.
    pub fn check_direct_source(&self, source: SocketAddr) -> Result<(), Violation> {
        if self.is_meta(source) {
            Ok(())
        } else {
            Err(Violation::NotMetaSource(source))
        }
    }

    /// The `client` of a direct reply: a unicast address of another host.
    pub fn check_client(&self, client: SocketAddr) -> Result<(), Violation> {
        let ip = client.ip().to_canonical();
        let peer_ip = self.peers.iter().any(|p| p.ip() == ip);
        let unicast = match ip {
            IpAddr::V4(v4) => {
                !(v4.is_multicast() || v4.is_broadcast() || v4 == Ipv4Addr::UNSPECIFIED)
            }
            IpAddr::V6(v6) => !(v6.is_multicast() || v6 == Ipv6Addr::UNSPECIFIED),
        };
        if client.port() == 0 || !unicast || peer_ip || self.is_local_ip(ip) {
            return Err(Violation::BadClient(client));
        }
        Ok(())
    }

    /// The origin of a request arriving from `src`: a first hop (`src`
    /// not a peer) must name its sender's address, IP and port.
    pub fn check_origin(&self, origin: SocketAddr, src: SocketAddr) -> Result<(), Violation> {
        if self.is_peer(src) || canon(origin) == canon(src) {
            Ok(())
        } else {
            Err(Violation::OriginMismatch { origin, src })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rules() {
        let p = AddrPolicy::new(
            a("127.0.0.1:7000"),
            &[a("10.1.0.1:2049")],
            &[
                a("127.0.0.1:7000"),
                a("127.0.0.1:7001"),
                a("10.1.0.12:7000"),
            ],
        );
        // self, even when listed as a peer, on any local address
        assert_eq!(
            p.check_next(a("127.0.0.1:7000")),
            Err(Violation::IsSelf(a("127.0.0.1:7000")))
        );
        assert!(p.is_self(a("127.0.0.2:7000")));
        assert!(p.is_self(a("[::ffff:127.0.0.1]:7000")));
        assert_eq!(p.check_next(a("127.0.0.1:7001")), Ok(()));
        assert_eq!(p.check_next(a("[::ffff:10.1.0.12]:7000")), Ok(()));
        assert_eq!(
            p.check_next(a("10.1.0.13:7000")),
            Err(Violation::NotPeer(a("10.1.0.13:7000")))
        );
        assert!(p.check_next(a("10.1.0.12:7001")).is_err());
        assert_eq!(p.check_hop(a("127.0.0.1:7000")), Ok(()));
        assert_eq!(p.check_hop(a("10.1.0.12:7000")), Ok(()));
        assert!(p.check_hop(a("10.1.0.13:7000")).is_err());
        // direct replies
        assert_eq!(p.check_direct_source(a("10.1.0.1:2049")), Ok(()));
        assert!(p.check_direct_source(a("10.1.0.1:2050")).is_err());
        assert!(p.check_direct_source(a("10.1.0.2:2049")).is_err());
        assert_eq!(p.check_client(a("10.1.0.101:800")), Ok(()));
        for bad in [
            "127.0.0.1:800",
            "127.3.0.1:800",
            "10.1.0.12:800",
            "0.0.0.0:800",
            "255.255.255.255:800",
            "224.0.0.1:800",
            "10.1.0.101:0",
            "[::1]:800",
        ] {
            assert!(p.check_client(a(bad)).is_err(), "{bad}");
        }
        // origins: first hops must name themselves, IP and port; peers
        // forward anyone's
        assert_eq!(p.check_origin(a("10.1.0.1:900"), a("10.1.0.1:900")), Ok(()));
        assert_eq!(
            p.check_origin(a("[::ffff:10.1.0.1]:900"), a("10.1.0.1:900")),
            Ok(())
        );
        assert_eq!(
            p.check_origin(a("10.1.0.1:900"), a("10.1.0.1:901")),
            Err(Violation::OriginMismatch {
                origin: a("10.1.0.1:900"),
                src: a("10.1.0.1:901")
            })
        );
        assert!(p
            .check_origin(a("10.1.0.2:900"), a("10.1.0.1:900"))
            .is_err());
        assert_eq!(
            p.check_origin(a("10.1.0.1:900"), a("127.0.0.1:7001")),
            Ok(())
        );
        assert!(p.is_meta(a("[::ffff:10.1.0.1]:2049")));
    }
}
