// SPDX-License-Identifier: GPL-2.0
//! The UDP server: a pool of worker threads receiving on one socket, each
//! with two reusable 64 KiB buffers (memory bound: workers × 2 × 64 KiB).

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use log::{debug, warn};
use nfsp_proto::nfs3::xdr_pad_len;
use nfsp_proto::wire::{
    Ack, Body, Chain, Commit, ListReply, ListRequest, Message, MsgType, Read, ReadReply, ReplySpec,
    Status, Truncate, Unlink, Write, AUTH_TAG_LEN,
};
use nfsp_proto::FileKey;

use crate::stats::Stats;
use crate::store::Store;
use crate::transparent::TransparentCache;

/// Size of each per-worker buffer.
pub const BUF_LEN: usize = 64 * 1024;

/// Server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Worker threads.
    pub workers: usize,
    /// Requests served at once before new ones are dropped.
    pub max_inflight: usize,
}

impl Config {
    /// Default worker count: CPUs × 4, at least 4.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get() * 4)
            .unwrap_or(4)
            .max(4)
    }
}

/// A bound, not yet running server.
pub struct Server {
    cfg: Config,
    sock: UdpSocket,
    store: Store,
    stats: Arc<Stats>,
}

/// A running server.
pub struct ServerHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shared counters.
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// Ask the workers to stop and wait for them.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Wait until the stop flag is set and the workers have exited.
    pub fn join(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Receive buffer asked for: a meta-server sends every stripe of a 1 MiB
/// request at once (as 60 KiB datagrams), more than the default 208 KiB
/// holds; a full buffer drops datagrams and costs a retransmission timeout.
const RECEIVE_BUFFER: libc::c_int = 8 << 20;

fn enlarge_receive_buffer(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    // SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN,
    // which direct replies need anyway; without it, SO_RCVBUF (capped).
    if crate::transparent::setopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RECEIVE_BUFFER)
        .is_err()
    {
        if let Err(e) =
            crate::transparent::setopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RECEIVE_BUFFER)
        {
            log::warn!("cannot enlarge the receive buffer: {e}");
        }
    }
}

impl Server {
    /// Bind the socket and open the data directory.
    pub fn bind(cfg: Config) -> anyhow::Result<Self> {
        let sock = UdpSocket::bind(cfg.listen).with_context(|| format!("bind {}", cfg.listen))?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .context("set read timeout")?;
        enlarge_receive_buffer(&sock);
        let store = Store::new(&cfg.data_dir)
            .with_context(|| format!("data directory {}", cfg.data_dir.display()))?;
        Ok(Server {
            cfg,
            sock,
            store,
            stats: Arc::new(Stats::default()),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Start the workers; they run until `stop` is set.
    pub fn start(self, stop: Arc<AtomicBool>) -> anyhow::Result<ServerHandle> {
        let addr = self.sock.local_addr().context("local addr")?;
        let shared = Arc::new(Shared {
            store: self.store,
            stats: Arc::clone(&self.stats),
            transparent: TransparentCache::default(),
            max_inflight: self.cfg.max_inflight.max(1) as u64,
            last_warn: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let mut threads = Vec::new();
        for i in 0..self.cfg.workers.max(1) {
            let sock = self.sock.try_clone().context("clone socket")?;
            let sh = Arc::clone(&shared);
            let st = Arc::clone(&stop);
            let t = std::thread::Builder::new()
                .name(format!("iod-worker-{i}"))
                .spawn(move || worker(sock, sh, st))
                .context("spawn worker")?;
            threads.push(t);
        }
        Ok(ServerHandle {
            addr,
            stats: self.stats,
            stop,
            threads,
        })
    }
}

struct Shared {
    store: Store,
    stats: Arc<Stats>,
    transparent: TransparentCache,
    max_inflight: u64,
    last_warn: AtomicU64,
    epoch: Instant,
}

impl Shared {
    /// Warn at most once per second; debug otherwise.
    fn warn_limited(&self, msg: std::fmt::Arguments<'_>) {
        let now = self.epoch.elapsed().as_secs() + 1;
        let last = self.last_warn.load(Ordering::Relaxed);
        if now > last
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!("{msg}");
        } else {
            debug!("{msg}");
        }
    }
}

struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn worker(sock: UdpSocket, sh: Arc<Shared>, stop: Arc<AtomicBool>) {
    let mut rbuf = vec![0u8; BUF_LEN];
    let mut sbuf = vec![0u8; BUF_LEN];
    while !stop.load(Ordering::Relaxed) {
        let (n, src) = match sock.recv_from(&mut rbuf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                sh.warn_limited(format_args!("recv: {e}"));
                continue;
            }
        };
        let Some(dgram) = rbuf.get(..n) else { continue };
        let msg = match Message::decode(dgram) {
            Ok(m) => m,
            Err(e) => {
                Stats::add(&sh.stats.malformed, 1);
                sh.warn_limited(format_args!(
                    "malformed datagram ({n} bytes) from {src}: {e}"
                ));
                continue;
            }
        };
        let inflight = sh.stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let _guard = InFlight(&sh.stats);
        if inflight > sh.max_inflight {
            Stats::add(&sh.stats.drops, 1);
            sh.warn_limited(format_args!("overloaded: dropping request from {src}"));
            continue;
        }
        Stats::add(&sh.stats.requests, 1);
        handle(&sock, &sh, &msg, src, &mut sbuf);
    }
}

fn send(sock: &UdpSocket, sh: &Shared, buf: &[u8], to: SocketAddr) {
    if let Err(e) = sock.send_to(buf, to) {
        Stats::add(&sh.stats.drops, 1);
        sh.warn_limited(format_args!("send to {to}: {e}"));
    }
}

#[allow(clippy::too_many_arguments)]
fn ack(
    sock: &UdpSocket,
    sh: &Shared,
    id: u64,
    op: MsgType,
    status: Status,
    value: u64,
    to: SocketAddr,
    sbuf: &mut [u8],
) {
    let m = Message::new(id, Body::Ack(Ack { op, status, value }));
    match m.encode(sbuf) {
        Ok(n) => send(sock, sh, sbuf.get(..n).unwrap_or(&[]), to),
        Err(e) => sh.warn_limited(format_args!("encode ack: {e}")),
    }
}

fn handle<'a>(sock: &UdpSocket, sh: &Shared, msg: &Message<'a>, src: SocketAddr, sbuf: &mut [u8]) {
    let id = msg.request_id;
    match &msg.body {
        Body::Read(r) => handle_read(sock, sh, id, &msg.auth_tag, r, sbuf),
        Body::Write(w) => {
            let res = sh.store.write(&w.key, w.local_offset, w.data);
            if res.is_ok() {
                Stats::add(&sh.stats.bytes_written, w.data.len() as u64);
            }
            let fwd = move |chain: Chain<'a>| Body::Write(Write { chain, ..*w });
            chain_step(
                sock,
                sh,
                msg,
                MsgType::Write,
                res,
                w.data.len() as u64,
                &w.chain,
                fwd,
                sbuf,
            );
        }
        Body::Commit(c) => {
            let res = sh.store.commit(&c.key);
            let fwd = move |chain: Chain<'a>| Body::Commit(Commit { chain, ..*c });
            chain_step(sock, sh, msg, MsgType::Commit, res, 0, &c.chain, fwd, sbuf);
        }
        Body::Truncate(t) => {
            let res = sh.store.truncate(&t.key, t.new_len);
            let fwd = move |chain: Chain<'a>| Body::Truncate(Truncate { chain, ..*t });
            chain_step(
                sock,
                sh,
                msg,
                MsgType::Truncate,
                res,
                t.new_len,
                &t.chain,
                fwd,
                sbuf,
            );
        }
        Body::Unlink(u) => handle_unlink(sock, sh, id, u, src, sbuf),
        Body::Ping => {
            let m = Message::new(id, Body::Pong(sh.stats.snapshot()));
            if let Ok(n) = m.encode(sbuf) {
                send(sock, sh, sbuf.get(..n).unwrap_or(&[]), src);
            }
        }
        Body::List(l) => handle_list(sock, sh, id, l, src, sbuf),
        Body::ReadReply(_) | Body::Ack(_) | Body::Pong(_) | Body::ListReply(_) => {
            Stats::add(&sh.stats.malformed, 1);
            sh.warn_limited(format_args!(
                "unexpected {:?} from {src}",
                msg.body.msg_type()
            ));
        }
    }
}

fn status_of(e: &crate::store::StoreError) -> Status {
    match e {
        crate::store::StoreError::Io { source, .. } => match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Status::NoSpace,
            Some(libc::EFBIG) => Status::TooBig,
            _ => Status::Io,
        },
        crate::store::StoreError::Key(_) => Status::Invalid,
    }
}

#[allow(clippy::too_many_arguments)]
fn chain_step<'a>(
    sock: &UdpSocket,
    sh: &Shared,
    msg: &Message<'a>,
    op: MsgType,
    res: Result<(), crate::store::StoreError>,
    value: u64,
    chain: &Chain<'a>,
    fwd: impl Fn(Chain<'a>) -> Body<'a>,
    sbuf: &mut [u8],
) {
    if let Err(e) = res {
        Stats::add(&sh.stats.errors, 1);
        sh.warn_limited(format_args!("{op:?}: {e}"));
        ack(
            sock,
            sh,
            msg.request_id,
            op,
            status_of(&e),
            0,
            chain.origin,
            sbuf,
        );
        return;
    }
    match chain.next() {
        None => ack(
            sock,
            sh,
            msg.request_id,
            op,
            Status::Ok,
            value,
            chain.origin,
            sbuf,
        ),
        Some((next, rest)) => {
            let m = Message {
                body: fwd(rest),
                ..*msg
            };
            match m.encode(sbuf) {
                Ok(n) => send(sock, sh, sbuf.get(..n).unwrap_or(&[]), next),
                Err(e) => {
                    Stats::add(&sh.stats.errors, 1);
                    sh.warn_limited(format_args!("encode forward: {e}"));
                    ack(
                        sock,
                        sh,
                        msg.request_id,
                        op,
                        Status::ForwardFailed,
                        0,
                        chain.origin,
                        sbuf,
                    );
                }
            }
        }
    }
}

fn handle_unlink(
    sock: &UdpSocket,
    sh: &Shared,
    id: u64,
    u: &Unlink<'_>,
    src: SocketAddr,
    sbuf: &mut [u8],
) {
    let mut removed = 0u64;
    let mut status = Status::Ok;
    for key in u.keys.iter() {
        match sh.store.unlink(&key) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => {
                Stats::add(&sh.stats.errors, 1);
                sh.warn_limited(format_args!("unlink: {e}"));
                status = Status::Io;
            }
        }
    }
    ack(sock, sh, id, MsgType::Unlink, status, removed, src, sbuf);
}

fn handle_list(
    sock: &UdpSocket,
    sh: &Shared,
    id: u64,
    l: &ListRequest,
    src: SocketAddr,
    sbuf: &mut [u8],
) {
    let (status, entries, more) = match sh.store.list(l.after.as_ref(), l.max as usize) {
        Ok((e, more)) => (Status::Ok, e, more),
        Err(e) => {
            Stats::add(&sh.stats.errors, 1);
            sh.warn_limited(format_args!("list: {e}"));
            (Status::Io, Vec::new(), false)
        }
    };
    let m = Message::new(
        id,
        Body::ListReply(ListReply {
            status,
            more,
            entries: nfsp_proto::wire::List::Items(&entries),
        }),
    );
    match m.encode(sbuf) {
        Ok(n) => send(sock, sh, sbuf.get(..n).unwrap_or(&[]), src),
        Err(e) => sh.warn_limited(format_args!("encode list reply: {e}")),
    }
}

fn read_into(sh: &Shared, key: &FileKey, offset: u64, dst: Option<&mut [u8]>) -> bool {
    let Some(dst) = dst else { return false };
    match sh.store.read(key, offset, dst) {
        Ok(()) => {
            Stats::add(&sh.stats.bytes_read, dst.len() as u64);
            true
        }
        Err(e) => {
            Stats::add(&sh.stats.errors, 1);
            sh.warn_limited(format_args!("read: {e}"));
            false
        }
    }
}

fn handle_read(
    sock: &UdpSocket,
    sh: &Shared,
    id: u64,
    tag: &[u8; AUTH_TAG_LEN],
    r: &Read<'_>,
    sbuf: &mut [u8],
) {
    let len = r.len as usize;
    if !r.routes.is_empty() {
        // Straddling read: append our extent and forward to the next hop.
        match r.encode_forward_prefix(id, tag, len, sbuf) {
            Ok((hop, n)) => {
                let end = n.saturating_add(len);
                if read_into(sh, &r.key, r.local_offset, sbuf.get_mut(n..end)) {
                    send(sock, sh, sbuf.get(..end).unwrap_or(&[]), hop.addr);
                } else if let ReplySpec::Relay { origin } = r.reply {
                    relay_error(sock, sh, id, origin, sbuf);
                }
            }
            Err(e) => {
                Stats::add(&sh.stats.errors, 1);
                sh.warn_limited(format_args!("encode forward: {e}"));
            }
        }
        return;
    }
    let total = r.gathered.len().saturating_add(len);
    match r.reply {
        ReplySpec::Relay { origin } => {
            let n = match ReadReply::encode_prefix(id, Status::Ok, total, sbuf) {
                Ok(n) => n,
                Err(e) => {
                    Stats::add(&sh.stats.errors, 1);
                    sh.warn_limited(format_args!("encode reply: {e}"));
                    return;
                }
            };
            let g_end = n.saturating_add(r.gathered.len());
            let end = n.saturating_add(total);
            match sbuf.get_mut(n..g_end) {
                Some(d) => d.copy_from_slice(r.gathered),
                None => return,
            }
            if read_into(sh, &r.key, r.local_offset, sbuf.get_mut(g_end..end)) {
                send(sock, sh, sbuf.get(..end).unwrap_or(&[]), origin);
            } else {
                relay_error(sock, sh, id, origin, sbuf);
            }
        }
        ReplySpec::Direct {
            client,
            source,
            header,
            pad,
        } => {
            let h = header.len();
            let g_end = h.saturating_add(r.gathered.len());
            let d_end = g_end.saturating_add(len);
            let padn = if pad { xdr_pad_len(total) } else { 0 };
            let end = d_end.saturating_add(padn);
            if end > sbuf.len() {
                Stats::add(&sh.stats.errors, 1);
                return;
            }
            let ok = sbuf
                .get_mut(..h)
                .map(|d| d.copy_from_slice(header))
                .is_some()
                && sbuf
                    .get_mut(h..g_end)
                    .map(|d| d.copy_from_slice(r.gathered))
                    .is_some()
                && read_into(sh, &r.key, r.local_offset, sbuf.get_mut(g_end..d_end))
                && sbuf.get_mut(d_end..end).map(|d| d.fill(0)).is_some();
            if !ok {
                // The client retransmits; nothing else to do.
                return;
            }
            match sh.transparent.get(source) {
                Ok(ts) => send(&ts, sh, sbuf.get(..end).unwrap_or(&[]), client),
                Err(e) => {
                    Stats::add(&sh.stats.errors, 1);
                    sh.warn_limited(format_args!("transparent socket for {source}: {e}"));
                }
            }
        }
    }
}

fn relay_error(sock: &UdpSocket, sh: &Shared, id: u64, origin: SocketAddr, sbuf: &mut [u8]) {
    let m = Message::new(
        id,
        Body::ReadReply(ReadReply {
            status: Status::Io,
            data: &[],
        }),
    );
    if let Ok(n) = m.encode(sbuf) {
        send(sock, sh, sbuf.get(..n).unwrap_or(&[]), origin);
    }
}
