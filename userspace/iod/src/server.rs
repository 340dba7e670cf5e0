// SPDX-License-Identifier: GPL-2.0
//! The UDP server: a pool of worker threads receiving on one socket, each
//! with two reusable 64 KiB buffers (memory bound: workers × 2 × 64 KiB),
//! one LIST thread fed by a small bounded queue, and a housekeeping thread.
//!
//! A request goes through, in this order:
//! 1. a source check: datagrams from a `--meta` direct-reply address are
//!    our own transparent replies looping back, dropped;
//! 2. `wire::open`: a datagram whose tag does not verify is dropped and
//!    counted, never answered, so an attacker without the key gets no byte
//!    out of the iod;
//! 3. PING is answered here, by the receiving worker, and never enters the
//!    replay table (a replayed PING gets a PONG, no longer than the PING,
//!    sent to its datagram source: harmless);
//! 4. the address rules ([`crate::policy`]) → ACK `Refused`;
//! 5. the instance: every other request must name ours → ACK `Stale`,
//!    decided under the replay table's lock before anything is looked up
//!    or remembered, so that captured messages of other instances (or
//!    copies meant for another iod) neither fill the table nor mark ids;
//! 6. the replay window ([`crate::replay`]): old seqs and duplicates are
//!    dropped, except that a finished mutation's retransmission is
//!    answered from the reply cache or re-forwarded along its chain (at
//!    most [`crate::replay::MAX_REFORWARDS`] times);
//! 7. cost bounds (file size) → ACK `TooBig`, LIST rate and queue → drop;
//! 8. the request itself.
//!
//! Refusals (Stale, Refused) are authenticated answers to authenticated
//! requests, never longer than the request they answer, and leave nothing
//! in the replay table (a retransmission is refused again).

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};
use nfsp_proto::auth::Keys;
use nfsp_proto::nfs3::xdr_pad_len;
use nfsp_proto::wire::{
    self, Ack, Body, Chain, Commit, ListReply, Message, MsgType, Read, ReadReply, ReplySpec,
    RequestId, Status, Truncate, Write, HEADER_LEN,
};
use nfsp_proto::{FileKey, ProtoError};

use crate::policy::{AddrPolicy, Violation};
use crate::ratelimit::RateLimiter;
use crate::replay::{Done, Kind, Repeat, ReplayTable, Verdict, MAX_EPOCHS, MAX_REFORWARDS};
use crate::stats::Stats;
use crate::store::{Store, StoreError};

mod ds;
use crate::transparent::TransparentCache;

/// Size of each per-worker buffer.
pub const BUF_LEN: usize = 64 * 1024;
/// Default largest local file: 1 TiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 40;
/// LIST requests waiting for the LIST thread; more are dropped.
pub const LIST_QUEUE: usize = 8;
/// LIST requests a second per sender IP (sustained).
pub const LIST_RATE: f64 = 20.0;
/// LIST requests per sender IP in a burst.
pub const LIST_BURST: f64 = 40.0;
/// How often the host's addresses are re-read.
const ADDR_REFRESH: Duration = Duration::from_secs(30);
/// Encoded length of an ACK (header + 12).
const ACK_LEN: usize = HEADER_LEN + 12;

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The UDP socket cannot be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        source: io::Error,
    },
    /// The data directory cannot be used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Another start-up step failed.
    #[error("{what}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// Cause.
        source: io::Error,
    },
}

fn io_step(what: &'static str) -> impl FnOnce(io::Error) -> ServerError {
    move |source| ServerError::Io { what, source }
}

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
    /// The cluster keys ([`Keys::insecure`] = no authentication).
    pub keys: Keys,
    /// The meta-server's NFS addresses: the only direct-reply sources.
    pub meta: Vec<SocketAddr>,
    /// The cluster's iods: the only READ hops and chain members.
    pub peers: Vec<SocketAddr>,
    /// Largest local file length WRITE and TRUNCATE may produce.
    pub max_file_size: u64,
    /// TCP address of the pNFS data server (NFSv3), if any.
    pub ds_listen: Option<SocketAddr>,
}

impl Config {
    /// A configuration with the defaults: [`Config::default_workers`],
    /// as many requests in flight, no meta-server, no peers, 1 TiB files.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>, keys: Keys) -> Self {
        let workers = Self::default_workers();
        Config {
            listen,
            data_dir: data_dir.into(),
            workers,
            max_inflight: workers,
            keys,
            meta: Vec::new(),
            peers: Vec::new(),
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            ds_listen: None,
        }
    }

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
    ds: Option<TcpListener>,
    store: Store,
    stats: Arc<Stats>,
    instance: u64,
}

/// A running server.
pub struct ServerHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shared counters.
    pub stats: Arc<Stats>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// Ask the threads to stop and wait for them.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Wait until the stop flag is set and the threads have exited.
    pub fn join(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// The instance requests must name now.
    pub fn instance(&self) -> u64 {
        self.shared.instance.load(Ordering::SeqCst)
    }

    /// Replaces the keys (rotation); requests in progress are not dropped.
    pub fn set_keys(&self, keys: Keys) {
        *self.shared.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    /// The keys in use.
    pub fn keys(&self) -> Keys {
        self.shared.keys()
    }

    /// Re-reads the key file (SIGHUP). On error the old keys stay.
    pub fn reload_keys(&self, path: &Path) -> Result<Keys, nfsp_keys::KeyFileError> {
        let keys = nfsp_keys::load(path)?;
        self.set_keys(keys);
        Ok(keys)
    }

    /// Re-reads the host's addresses now.
    pub fn refresh_addresses(&self) {
        self.shared.policy.refresh_local();
    }

    /// Fault injection (tests): `fault` from now on, or none.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.shared
            .fault
            .store(fault.map_or(0, |f| f as u8), Ordering::Relaxed);
    }
}

/// Receive buffer asked for: a meta-server sends every stripe of a 1 MiB
/// request at once (as 60 KiB datagrams), more than the default 208 KiB
/// holds; a full buffer drops datagrams and costs a retransmission timeout.
const RECEIVE_BUFFER: usize = 8 << 20;

fn enlarge_receive_buffer(sock: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    // SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN,
    // which direct replies need anyway; without it, SO_RCVBUF (capped).
    if setsockopt(sock, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
        if let Err(e) = setsockopt(sock, sockopt::RcvBuf, &RECEIVE_BUFFER) {
            warn!("cannot enlarge the receive buffer: {e}");
        }
    }
}

impl Server {
    /// Bind the socket, open the data directory (and its identity), pick a
    /// random instance of it.
    pub fn bind(cfg: Config) -> Result<Self, ServerError> {
        let sock = UdpSocket::bind(cfg.listen).map_err(|source| ServerError::Bind {
            addr: cfg.listen,
            source,
        })?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(io_step("set read timeout"))?;
        enlarge_receive_buffer(&sock);
        let store = Store::new(&cfg.data_dir).map_err(|source| ServerError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let (identity, drawn) = store
            .identity(|| nfsp_keys::random_nonzero_u64().map(|v| v as u32))
            .map_err(|source| ServerError::DataDir {
                path: cfg.data_dir.clone(),
                source,
            })?;
        if drawn {
            warn!(
                "data directory {} had no identity: it is {identity:08x} from now on (first \
                 start on it; a meta-server that knew another one reads nothing from this iod \
                 until it is re-synced or accepted)",
                cfg.data_dir.display()
            );
        }
        let random = nfsp_keys::random_nonzero_u64().map_err(io_step("random instance"))?;
        let instance = wire::instance_of(identity, random as u32);
        let ds = match cfg.ds_listen {
            Some(addr) => {
                // Fencing keeps layout epochs in extended attributes.
                store
                    .check_epochs()
                    .map_err(|source| ServerError::DataDir {
                        path: cfg.data_dir.clone(),
                        source,
                    })?;
                Some(TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?)
            }
            None => None,
        };
        Ok(Server {
            cfg,
            sock,
            ds,
            store,
            stats: Arc::new(Stats::default()),
            instance,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The data server's bound address, if it has one.
    pub fn ds_addr(&self) -> Option<SocketAddr> {
        self.ds.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The instance chosen at start.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Start the threads; they run until `stop` is set.
    pub fn start(self, stop: Arc<AtomicBool>) -> Result<ServerHandle, ServerError> {
        let addr = self.sock.local_addr().map_err(io_step("local address"))?;
        let (list_tx, list_rx) = mpsc::sync_channel(LIST_QUEUE);
        let shared = Arc::new(Shared {
            store: self.store,
            stats: Arc::clone(&self.stats),
            transparent: TransparentCache::default(),
            max_inflight: self.cfg.max_inflight.max(1) as u64,
            last_warn: AtomicU64::new(0),
            clock: Instant::now(),
            keys: RwLock::new(self.cfg.keys),
            replay: Mutex::new(ReplayTable::new(self.instance, MAX_EPOCHS)),
            instance: AtomicU64::new(self.instance),
            policy: AddrPolicy::new(addr, &self.cfg.meta, &self.cfg.peers),
            max_file_size: self.cfg.max_file_size,
            list_tx,
            list_limit: RateLimiter::new(LIST_RATE, LIST_BURST),
            fault: AtomicU8::new(0),
        });
        let mut threads = Vec::new();
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(io_step("spawn thread"))
        };
        for i in 0..self.cfg.workers.max(1) {
            let sock = self.sock.try_clone().map_err(io_step("clone socket"))?;
            let (sh, st) = (Arc::clone(&shared), Arc::clone(&stop));
            threads.push(spawn(
                format!("iod-worker-{i}"),
                Box::new(move || worker(sock, sh, st)),
            )?);
        }
        let sock = self.sock.try_clone().map_err(io_step("clone socket"))?;
        let (sh, st) = (Arc::clone(&shared), Arc::clone(&stop));
        threads.push(spawn(
            "iod-list".into(),
            Box::new(move || list_worker(sock, sh, list_rx, st)),
        )?);
        if let Some(listener) = self.ds {
            let (sh, st) = (Arc::clone(&shared), Arc::clone(&stop));
            // The write verifier: the instance at start, changed only by a
            // restart (not by a rotation of the replay window).
            let verifier = self.instance.to_be_bytes();
            threads.push(spawn(
                "iod-ds".into(),
                Box::new(move || ds::accept_loop(listener, sh, verifier, st)),
            )?);
        }
        let (sh, st) = (Arc::clone(&shared), Arc::clone(&stop));
        threads.push(spawn(
            "iod-housekeeping".into(),
            Box::new(move || housekeeping(sh, st)),
        )?);
        Ok(ServerHandle {
            addr,
            stats: self.stats,
            shared,
            stop,
            threads,
        })
    }
}

/// A LIST waiting for the LIST thread.
struct ListJob {
    id: RequestId,
    src: SocketAddr,
    after: Option<FileKey>,
    max: u16,
}

struct Shared {
    store: Store,
    stats: Arc<Stats>,
    transparent: TransparentCache,
    max_inflight: u64,
    last_warn: AtomicU64,
    clock: Instant,
    keys: RwLock<Keys>,
    /// The window, and the authoritative instance (rotated under its lock).
    replay: Mutex<ReplayTable>,
    /// A copy of the instance for answers that need no window.
    instance: AtomicU64,
    policy: AddrPolicy,
    max_file_size: u64,
    list_tx: SyncSender<ListJob>,
    list_limit: RateLimiter,
    /// The [`Fault`] injected now (tests; 0: none).
    fault: AtomicU8,
}

/// A fault the tests inject, to make a race or a loss happen when they
/// need it instead of when timing allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Every COMMIT is dropped unanswered (the sender retries; once off,
    /// a retry is served), as by a disk that stopped flushing: writes stay
    /// acknowledged but uncommitted for as long as a test needs.
    DropCommits = 1,
    /// Every new TRUNCATE waits [`HOLD`] before it is applied: a cut lands
    /// after the writes sent meanwhile, as on a slow or busy iod.
    HoldTruncates = 2,
    /// The next new WRITE (one) waits [`HOLD`] before it is applied: a
    /// write sent after it lands first, as after a loss and a resend.
    HoldNextWrite = 3,
    /// COMMITs and stable pNFS writes are answered without flushing
    /// anything (as by a disk that lies about its cache): measures what
    /// durability costs, and must never be on where data matters.
    SkipSync = 4,
}

/// How long [`Fault::HoldTruncates`] holds a TRUNCATE (less than the
/// meta-server's rounds of retries).
pub const HOLD: Duration = Duration::from_secs(2);

impl Shared {
    fn fault(&self, f: Fault) -> bool {
        self.fault.load(Ordering::Relaxed) == f as u8
    }

    /// The store's commit of `key`, unless [`Fault::SkipSync`] is on.
    fn commit(&self, key: &FileKey) -> Result<(), StoreError> {
        if self.fault(Fault::SkipSync) {
            self.warn_limited(format_args!("fault injection: COMMIT answered unflushed"));
            return Ok(());
        }
        self.store.commit(key)
    }
}

impl Shared {
    /// Warn at most once per second; debug otherwise.
    fn warn_limited(&self, msg: std::fmt::Arguments<'_>) {
        let now = self.clock.elapsed().as_secs() + 1;
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

    fn keys(&self) -> Keys {
        *self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The identity of our data directory (constant: rotations keep it).
    fn identity(&self) -> u32 {
        wire::identity_of(self.instance.load(Ordering::SeqCst))
    }

    fn replay(&self) -> std::sync::MutexGuard<'_, ReplayTable> {
        self.replay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Instance and window check of a request naming instance `named`;
    /// rotates the instance when the epoch table is full.
    fn check_window(&self, id: RequestId, named: u64, kind: Kind) -> (Verdict, u64) {
        let mut t = self.replay();
        let (v, inst) = t.check(id, named, kind, new_instance);
        if self.instance.swap(inst, Ordering::SeqCst) != inst {
            warn!(
                "replay table full ({MAX_EPOCHS} sender epochs): new instance {inst:016x}; \
                 senders will be answered Stale once and retry"
            );
        }
        (v, inst)
    }
}

/// A new instance of the data directory of `old`: the same identity,
/// another random half.
fn new_instance(old: u64) -> u64 {
    let identity = wire::identity_of(old);
    loop {
        let v = match nfsp_keys::random_nonzero_u64() {
            Ok(v) => v as u32,
            Err(e) => {
                // No randomness: still a different instance, which is
                // what the security argument needs (never one seen before).
                log::error!("random instance: {e}");
                (old as u32).wrapping_add(0x7F4A_7C15)
            }
        };
        let new = wire::instance_of(identity, v);
        if new != old {
            return new;
        }
    }
}

struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn is_auth_error(e: &ProtoError) -> bool {
    matches!(
        e,
        ProtoError::Unauthenticated | ProtoError::UnknownKey | ProtoError::BadTag
    )
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
        if sh.policy.is_meta(src) {
            // Only our own direct replies come from there.
            Stats::add(&sh.stats.refused, 1);
            sh.warn_limited(format_args!(
                "dropping a datagram from meta-server address {src}"
            ));
            continue;
        }
        let Some(dgram) = rbuf.get(..n) else { continue };
        let keys = sh.keys();
        let msg = match wire::open(&keys, dgram) {
            Ok(m) => m,
            Err(e) => {
                let c = if is_auth_error(&e) {
                    &sh.stats.bad_auth
                } else {
                    &sh.stats.malformed
                };
                Stats::add(c, 1);
                sh.warn_limited(format_args!(
                    "dropping a datagram ({n} bytes) from {src}: {e}"
                ));
                continue;
            }
        };
        let inflight = sh.stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let _guard = InFlight(&sh.stats);
        if inflight > sh.max_inflight {
            // Before the window: a retransmission of it is still new.
            Stats::add(&sh.stats.drops, 1);
            sh.warn_limited(format_args!("overloaded: dropping request from {src}"));
            continue;
        }
        let cx = Ctx {
            sock: &sock,
            sh: &sh,
            keys,
            src,
            len: n,
            instance: 0,
            mutation: false,
        };
        handle(cx, &msg, &mut sbuf);
    }
}

/// One request's context.
#[derive(Clone, Copy)]
struct Ctx<'s> {
    sock: &'s UdpSocket,
    sh: &'s Shared,
    keys: Keys,
    src: SocketAddr,
    /// Length of the request datagram.
    len: usize,
    /// Our instance, as checked against the request.
    instance: u64,
    /// The request is a mutation: its outcome goes to the reply cache.
    mutation: bool,
}

impl Ctx<'_> {
    /// Records a mutation's outcome, before the answer or forward leaves:
    /// once the origin can retransmit, the cache knows what to repeat.
    fn record(&self, id: RequestId, done: Done) {
        if self.mutation {
            self.sh.replay().finish(id, done);
        }
    }
}

fn send(sock: &UdpSocket, sh: &Shared, buf: &[u8], to: SocketAddr) -> bool {
    match sock.send_to(buf, to) {
        Ok(_) => true,
        Err(e) => {
            Stats::add(&sh.stats.drops, 1);
            sh.warn_limited(format_args!("send to {to}: {e}"));
            false
        }
    }
}

/// Seal `m` into `sbuf` and send it to `to`.
fn send_msg(cx: &Ctx<'_>, m: &Message<'_>, to: SocketAddr, sbuf: &mut [u8]) -> bool {
    match m.seal(&cx.keys, sbuf) {
        Ok(n) => send(cx.sock, cx.sh, sbuf.get(..n).unwrap_or(&[]), to),
        Err(e) => {
            cx.sh
                .warn_limited(format_args!("encode {:?}: {e}", m.body.msg_type()));
            false
        }
    }
}

/// Send an ACK carrying our instance and the request's id.
fn ack(cx: &Ctx<'_>, id: RequestId, a: Ack, to: SocketAddr, sbuf: &mut [u8]) {
    // Recorded even if the send fails: a retransmission gets it.
    cx.record(id, Done::Acked { ack: a, to });
    let m = Message::new(id, cx.instance, Body::Ack(a));
    send_msg(cx, &m, to, sbuf);
}

/// Answer a refused request (Stale, Refused): never more bytes than it
/// had. Refusals are decided before the replay table and leave nothing in
/// it (`cx.mutation` is still false).
fn refuse(cx: &Ctx<'_>, msg: &Message<'_>, status: Status, to: SocketAddr, sbuf: &mut [u8]) {
    Stats::add(&cx.sh.stats.refused, 1);
    if cx.len < ACK_LEN {
        return;
    }
    let a = Ack {
        op: msg.body.msg_type(),
        status,
        value: 0,
    };
    ack(cx, msg.id, a, to, sbuf)
}

/// Who hears of a request's outcome (and of a Stale refusal).
fn origin_of(body: &Body<'_>) -> Option<SocketAddr> {
    match body {
        Body::Read(r) => Some(match r.reply {
            ReplySpec::Direct { origin, .. } | ReplySpec::Relay { origin } => origin,
        }),
        Body::Write(w) => Some(w.chain.origin),
        Body::Commit(c) => Some(c.chain.origin),
        Body::Truncate(t) => Some(t.chain.origin),
        _ => None,
    }
}

fn check_chain(p: &AddrPolicy, c: &Chain<'_>, src: SocketAddr) -> Result<(), Violation> {
    p.check_origin(c.origin, src)?;
    for m in c.members.iter() {
        p.check_next(m.addr)?;
    }
    Ok(())
}

/// The address rules of [`crate::policy`], on the whole request (every
/// remaining hop and member) before anything is applied.
fn check_addresses(p: &AddrPolicy, body: &Body<'_>, src: SocketAddr) -> Result<(), Violation> {
    match body {
        Body::Read(r) => {
            for h in r.routes.iter() {
                p.check_hop(h.addr)?;
            }
            match r.reply {
                ReplySpec::Relay { origin } => p.check_origin(origin, src),
                ReplySpec::Direct {
                    origin,
                    client,
                    source,
                    ..
                } => {
                    p.check_origin(origin, src)?;
                    p.check_direct_source(source)?;
                    p.check_client(client)
                }
            }
        }
        Body::Write(w) => check_chain(p, &w.chain, src),
        Body::Commit(c) => check_chain(p, &c.chain, src),
        Body::Truncate(t) => check_chain(p, &t.chain, src),
        _ => Ok(()),
    }
}

fn handle(mut cx: Ctx<'_>, msg: &Message<'_>, sbuf: &mut [u8]) {
    let sh = cx.sh;
    let src = cx.src;
    let op = msg.body.msg_type();
    if op.is_answer() {
        Stats::add(&sh.stats.malformed, 1);
        sh.warn_limited(format_args!("unexpected {op:?} from {src}"));
        return;
    }
    Stats::add(&sh.stats.requests, 1);
    cx.instance = sh.instance.load(Ordering::SeqCst);
    if let Body::Ping = msg.body {
        // Out of the replay table: a PING changes nothing and its PONG is
        // no larger than it, so every authenticated one is answered.
        let mut stats = sh.stats.snapshot();
        (stats.space_total, stats.space_free, stats.space_avail) = sh.store.space();
        let m = Message::new(msg.id, cx.instance, Body::Pong(stats));
        send_msg(&cx, &m, src, sbuf);
        return;
    }
    if let Err(v) = check_addresses(&sh.policy, &msg.body, src) {
        sh.warn_limited(format_args!("refusing {op:?} from {src}: {v}"));
        // A first hop's sender hears of it; a forwarded copy's origin does
        // (the previous iod would only drop the answer).
        let to = match origin_of(&msg.body) {
            Some(o) if sh.policy.is_peer(src) => o,
            _ => src,
        };
        refuse(&cx, msg, Status::Refused, to, sbuf);
        return;
    }
    let origin = origin_of(&msg.body);
    let answer_to = origin.unwrap_or(src);
    let mutation = matches!(
        op,
        MsgType::Write | MsgType::Commit | MsgType::Truncate | MsgType::Unlink
    );
    let kind = match &msg.body {
        _ if mutation => Kind::Mutation { src, origin },
        Body::Read(r) => {
            // Hops naming us right after our own extent are served in
            // place; a later one means the route comes back through a peer.
            let is_self = |h: &wire::Hop| sh.policy.is_self(h.addr);
            Kind::Read {
                remaining: r.routes.len().min(u8::MAX as usize) as u8,
                revisit: r.routes.iter().skip_while(is_self).any(|h| is_self(&h)),
            }
        }
        _ => Kind::Other,
    };
    // Dropped before the replay window sees it: a retransmission after the
    // fault is turned off is served, not taken for a duplicate.
    if matches!(msg.body, Body::Commit(_)) && sh.fault(Fault::DropCommits) {
        sh.warn_limited(format_args!("fault injection: COMMIT dropped"));
        return;
    }
    let (verdict, instance) = sh.check_window(msg.id, msg.instance, kind);
    cx.instance = instance;
    match verdict {
        Verdict::New => {}
        Verdict::Stale => {
            debug!(
                "{op:?} {:?} from {src} names instance {:016x}, ours is {instance:016x}",
                msg.id, msg.instance
            );
            refuse(&cx, msg, Status::Stale, answer_to, sbuf);
            return;
        }
        Verdict::TooOld => {
            Stats::add(&sh.stats.replays, 1);
            sh.warn_limited(format_args!(
                "{op:?} {:?} from {src}: older than the window",
                msg.id
            ));
            return;
        }
        Verdict::Duplicate(r) => {
            Stats::add(&sh.stats.replays, 1);
            debug!("{op:?} {:?} from {src}: duplicate ({r:?})", msg.id);
            repeat(&cx, msg, r, sbuf);
            return;
        }
    }
    cx.mutation = mutation;
    // Held once it is in the window: the copies the sender retransmits
    // meanwhile are duplicates, not cuts of their own.
    let held = match msg.body {
        Body::Truncate(_) => sh.fault(Fault::HoldTruncates),
        Body::Write(_) => sh
            .fault
            .compare_exchange(
                Fault::HoldNextWrite as u8,
                0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok(),
        _ => false,
    };
    if held {
        warn!(
            "fault injection: {op:?} {:?} held {} s",
            msg.id,
            HOLD.as_secs()
        );
        std::thread::sleep(HOLD);
    }
    match &msg.body {
        Body::Read(r) => handle_read(&cx, msg.id, r, sbuf),
        Body::List(l) => {
            if !sh.list_limit.allow(src.ip(), Instant::now()) {
                Stats::add(&sh.stats.drops, 1);
                sh.warn_limited(format_args!("LIST rate limit: dropping LIST from {src}"));
                return;
            }
            let job = ListJob {
                id: msg.id,
                src,
                after: l.after,
                max: l.max,
            };
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                sh.list_tx.try_send(job)
            {
                Stats::add(&sh.stats.drops, 1);
                sh.warn_limited(format_args!("LIST queue full: dropping LIST from {src}"));
            }
        }
        Body::Length(key) => {
            // Read-only: the meta-server learns what clients wrote through
            // pNFS layouts.
            let (status, value) = match sh.store.len(key) {
                Ok(n) => (Status::Ok, n),
                Err(e) => {
                    Stats::add(&sh.stats.errors, 1);
                    sh.warn_limited(format_args!("length: {e}"));
                    (status_of(&e), 0)
                }
            };
            ack(&cx, msg.id, Ack { op, status, value }, src, sbuf);
        }
        Body::Write(w) => {
            let end = w.local_offset.saturating_add(w.data.len() as u64);
            if end > sh.max_file_size {
                too_big(&cx, msg.id, op, end, answer_to, sbuf)
            } else {
                let res = sh.store.write(&w.key, w.local_offset, w.data);
                if res.is_ok() {
                    Stats::add(&sh.stats.bytes_written, w.data.len() as u64);
                }
                let fwd = |chain| Body::Write(Write { chain, ..*w });
                chain_step(&cx, msg, res, w.data.len() as u64, &w.chain, fwd, sbuf)
            }
        }
        Body::Commit(c) => {
            let res = sh.commit(&c.key);
            let fwd = |chain| Body::Commit(Commit { chain, ..*c });
            chain_step(&cx, msg, res, 0, &c.chain, fwd, sbuf)
        }
        Body::Truncate(t) => {
            if t.new_len > sh.max_file_size {
                too_big(&cx, msg.id, op, t.new_len, answer_to, sbuf)
            } else {
                let res = if t.extend_only {
                    sh.store.extend(&t.key, t.new_len, t.layout_epoch)
                } else {
                    sh.store.truncate(&t.key, t.new_len, t.layout_epoch)
                };
                let fwd = |chain| Body::Truncate(Truncate { chain, ..*t });
                chain_step(&cx, msg, res, t.new_len, &t.chain, fwd, sbuf)
            }
        }
        Body::Unlink(u) => {
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
            let a = Ack {
                op,
                status,
                value: removed,
            };
            ack(&cx, msg.id, a, src, sbuf);
        }
        // Handled above.
        Body::Ping | Body::ReadReply(_) | Body::Ack(_) | Body::Pong(_) | Body::ListReply(_) => {}
    }
}

fn too_big(cx: &Ctx<'_>, id: RequestId, op: MsgType, len: u64, to: SocketAddr, sbuf: &mut [u8]) {
    Stats::add(&cx.sh.stats.errors, 1);
    cx.sh.warn_limited(format_args!(
        "{op:?} to local length {len} > --max-file-size {}",
        cx.sh.max_file_size
    ));
    let a = Ack {
        op,
        status: Status::TooBig,
        value: 0,
    };
    ack(cx, id, a, to, sbuf);
}

/// A retransmitted mutation we finished: say again what we said (only to
/// where it went: a captured request replayed from elsewhere reflects
/// nothing to its new source), or forward it again (the next member
/// suppresses its own duplicate and answers from its cache) a bounded
/// number of times; never apply it twice. The addresses of `msg` were
/// checked before the window.
fn repeat(cx: &Ctx<'_>, msg: &Message<'_>, r: Repeat, sbuf: &mut [u8]) {
    match r {
        Repeat::Nothing | Repeat::InProgress => {}
        Repeat::Ack { ack: a, to } => {
            let m = Message::new(msg.id, cx.instance, Body::Ack(a));
            send_msg(cx, &m, to, sbuf);
        }
        Repeat::ForwardSpent => cx.sh.warn_limited(format_args!(
            "{:?} {:?} from {}: forwarded again {MAX_REFORWARDS} times already, dropped as a replay",
            msg.body.msg_type(),
            msg.id,
            cx.src
        )),
        Repeat::Forward => {
            let next = match &msg.body {
                Body::Write(w) => w
                    .chain
                    .next()
                    .map(|(n, rest)| (n, Body::Write(Write { chain: rest, ..*w }))),
                Body::Commit(c) => c
                    .chain
                    .next()
                    .map(|(n, rest)| (n, Body::Commit(Commit { chain: rest, ..*c }))),
                Body::Truncate(t) => t
                    .chain
                    .next()
                    .map(|(n, rest)| (n, Body::Truncate(Truncate { chain: rest, ..*t }))),
                _ => None,
            };
            if let Some((n, body)) = next {
                send_msg(cx, &Message::new(msg.id, n.instance, body), n.addr, sbuf);
            }
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
        // Only data-server filehandles carry epochs.
        crate::store::StoreError::Fenced { .. } => Status::Invalid,
    }
}

/// After applying a chain request: forward it to the next member (same
/// request id, that member's instance), or ACK the origin when the chain
/// is done or we failed.
fn chain_step<'a>(
    cx: &Ctx<'_>,
    msg: &Message<'a>,
    res: Result<(), crate::store::StoreError>,
    value: u64,
    chain: &Chain<'a>,
    fwd: impl Fn(Chain<'a>) -> Body<'a>,
    sbuf: &mut [u8],
) {
    let op = msg.body.msg_type();
    let ack_status = |status, value| Ack { op, status, value };
    if let Err(e) = res {
        Stats::add(&cx.sh.stats.errors, 1);
        cx.sh.warn_limited(format_args!("{op:?}: {e}"));
        return ack(cx, msg.id, ack_status(status_of(&e), 0), chain.origin, sbuf);
    }
    match chain.next() {
        None => ack(
            cx,
            msg.id,
            ack_status(Status::Ok, value),
            chain.origin,
            sbuf,
        ),
        Some((next, rest)) => {
            // Each member removes itself, so a chain ends after at most
            // MAX_CHAIN forwards: no loop even through a misconfigured peer.
            cx.record(msg.id, Done::Forwarded);
            let m = Message::new(msg.id, next.instance, fwd(rest));
            if !send_msg(cx, &m, next.addr, sbuf) {
                Stats::add(&cx.sh.stats.errors, 1);
                ack(
                    cx,
                    msg.id,
                    ack_status(Status::ForwardFailed, 0),
                    chain.origin,
                    sbuf,
                );
            }
        }
    }
}

fn list_worker(sock: UdpSocket, sh: Arc<Shared>, rx: Receiver<ListJob>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; BUF_LEN];
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(job) => serve_list(&sock, &sh, &job, &mut buf),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}

fn serve_list(sock: &UdpSocket, sh: &Shared, job: &ListJob, buf: &mut [u8]) {
    let (status, entries, more) = match sh.store.list(job.after.as_ref(), job.max as usize) {
        Ok((e, more)) => (Status::Ok, e, more),
        Err(e) => {
            Stats::add(&sh.stats.errors, 1);
            sh.warn_limited(format_args!("list: {e}"));
            (Status::Io, Vec::new(), false)
        }
    };
    let m = Message::new(
        job.id,
        sh.instance.load(Ordering::SeqCst),
        Body::ListReply(ListReply {
            status,
            more,
            entries: wire::List::Items(&entries),
        }),
    );
    match m.seal(&sh.keys(), buf) {
        Ok(n) => {
            send(sock, sh, buf.get(..n).unwrap_or(&[]), job.src);
        }
        Err(e) => sh.warn_limited(format_args!("encode list reply: {e}")),
    }
}

fn housekeeping(sh: Arc<Shared>, stop: Arc<AtomicBool>) {
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if last.elapsed() >= ADDR_REFRESH {
            sh.policy.refresh_local();
            sh.list_limit.purge(Instant::now());
            last = Instant::now();
        }
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

/// Seal `sbuf[..end]` in place and send it.
fn seal_send(cx: &Ctx<'_>, sbuf: &mut [u8], end: usize, to: SocketAddr) -> bool {
    let Some(d) = sbuf.get_mut(..end) else {
        return false;
    };
    match wire::seal(&cx.keys, d) {
        Ok(()) => send(cx.sock, cx.sh, d, to),
        Err(e) => {
            cx.sh.warn_limited(format_args!("seal: {e}"));
            false
        }
    }
}

/// A READ that could not be served: the origin hears of it.
fn read_failed(cx: &Ctx<'_>, id: RequestId, r: &Read<'_>, sbuf: &mut [u8]) {
    match r.reply {
        ReplySpec::Relay { origin } => {
            let m = Message::new(
                id,
                cx.instance,
                Body::ReadReply(ReadReply {
                    status: Status::Io,
                    data: &[],
                }),
            );
            send_msg(cx, &m, origin, sbuf);
        }
        ReplySpec::Direct { origin, .. } => {
            let a = Ack {
                op: MsgType::Read,
                status: Status::Io,
                value: 0,
            };
            ack(cx, id, a, origin, sbuf);
        }
    }
}

/// The extents this iod serves for a READ now: its own, then those of the
/// hops naming it right after (served in place, never sent to itself).
struct Extents {
    list: [(u64, u32); wire::MAX_HOPS + 1],
    n: usize,
    total: usize,
}

impl Extents {
    fn take<'a>(sh: &Shared, r: &Read<'a>) -> (Self, wire::List<'a, wire::Hop>) {
        let mut e = Extents {
            list: [(0, 0); wire::MAX_HOPS + 1],
            n: 1,
            total: r.len as usize,
        };
        e.list[0] = (r.local_offset, r.len);
        let mut rest = r.routes;
        while let Some(h) = rest.first() {
            if !sh.policy.is_self(h.addr) || e.n >= e.list.len() {
                break;
            }
            e.list[e.n] = (h.local_offset, h.len);
            e.n += 1;
            e.total = e.total.saturating_add(h.len as usize);
            rest = rest.rest();
        }
        (e, rest)
    }

    /// Reads every extent, in order, into `dst` (exactly `total` bytes).
    fn read(&self, sh: &Shared, key: &FileKey, dst: Option<&mut [u8]>) -> bool {
        let Some(mut dst) = dst else { return false };
        for &(off, len) in self.list.iter().take(self.n) {
            let len = len as usize;
            if len > dst.len() {
                return false;
            }
            let (d, rest) = std::mem::take(&mut dst).split_at_mut(len);
            if !read_into(sh, key, off, Some(d)) {
                return false;
            }
            dst = rest;
        }
        true
    }
}

fn handle_read(cx: &Ctx<'_>, id: RequestId, r: &Read<'_>, sbuf: &mut [u8]) {
    let sh = cx.sh;
    let (ext, routes) = Extents::take(sh, r);
    let len = ext.total;
    if !routes.is_empty() {
        // Straddling read: append our extents and forward to the next hop
        // (same id, the hop's instance). Each forward removes a hop, so a
        // READ makes at most MAX_HOPS forwards: no loop is possible.
        let fwd = Read { routes, ..*r };
        match fwd.encode_forward_prefix(id, len, sbuf) {
            Ok((hop, n)) => {
                let end = n.saturating_add(len);
                if ext.read(sh, &r.key, sbuf.get_mut(n..end)) {
                    seal_send(cx, sbuf, end, hop.addr);
                } else {
                    read_failed(cx, id, r, sbuf);
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
            let n = match ReadReply::encode_prefix(id, cx.instance, Status::Ok, total, sbuf) {
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
            if ext.read(sh, &r.key, sbuf.get_mut(g_end..end)) {
                seal_send(cx, sbuf, end, origin);
            } else {
                read_failed(cx, id, r, sbuf);
            }
        }
        ReplySpec::Direct {
            client,
            source,
            header,
            pad,
            ..
        } => {
            let h = header.len();
            let g_end = h.saturating_add(r.gathered.len());
            let d_end = g_end.saturating_add(len);
            let padn = if pad { xdr_pad_len(total) } else { 0 };
            let end = d_end.saturating_add(padn);
            if end > sbuf.len() {
                Stats::add(&sh.stats.errors, 1);
                read_failed(cx, id, r, sbuf);
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
                && ext.read(sh, &r.key, sbuf.get_mut(g_end..d_end))
                && sbuf.get_mut(d_end..end).map(|d| d.fill(0)).is_some();
            if !ok {
                read_failed(cx, id, r, sbuf);
                return;
            }
            match sh.transparent.get(source) {
                Ok(ts) => {
                    send(&ts, sh, sbuf.get(..end).unwrap_or(&[]), client);
                }
                Err(e) => {
                    Stats::add(&sh.stats.errors, 1);
                    sh.warn_limited(format_args!("transparent socket for {source}: {e}"));
                    read_failed(cx, id, r, sbuf);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_instance_keeps_the_identity() {
        let old = wire::instance_of(0x1d1d_0001, 5);
        for _ in 0..100 {
            let new = new_instance(old);
            assert_ne!(new, old);
            assert_eq!(wire::identity_of(new), 0x1d1d_0001);
        }
    }
}
