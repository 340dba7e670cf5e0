// SPDX-License-Identifier: GPL-2.0

//! Talking to the iods for one nfsd request.
//!
//! Each request gets its own UDP socket. Its messages go out a few at a
//! time (a window: the stripes travel in parallel without flooding a slow
//! link, which would drop whole datagrams), answers are matched by request
//! id and open the window further, and whatever is unanswered after the
//! table's timeout is sent again with the wait doubled (a busy link is not
//! made busier). An iod that stays silent for a bounded number of rounds
//! makes the request fail with `EAGAIN`, which nfsd turns into
//! NFS3ERR_JUKEBOX: the client retries later, no nfsd thread hangs. The
//! iod is then known to be silent: requests that need it fail at once,
//! but for one probe a second that waits a single round, until it answers
//! again, so that a dead iod does not hold the nfsd threads every other
//! export needs too.
//!
//! Every datagram is sealed with the cluster key and every answer opened
//! with it; an answer counts only from an iod the message went to (the
//! head, or a member of its replica chain) and with the message's request
//! id. Request ids are this module load's random epoch plus a counter.
//! Messages name the iod instance they are meant for; an iod that
//! restarted answers `Stale` with its new instance, and the message is
//! re-issued with it (a new id: the refused one was not applied). An
//! unanswered READ is re-sent with a new id too (iods drop copies of
//! reads), writes with the same one (iods apply them once and answer
//! copies from a cache).

use core::net::SocketAddr;

use kernel::{
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    time::{Instant, Monotonic},
};

use crate::ffi::{random_u64, DirectReply, NetRef, UdpSocket};
use crate::proto::control::IodState;
use crate::proto::{
    auth::Keys,
    filekey::FileKey,
    nfs3_error,
    stripe::StripeLayout,
    wire::{
        self, Body, Chain, ChainMember, Hop, List, Message, MsgType, ReplySpec, RequestId, Status,
    },
};
use crate::viod::{Anchor, Iod, Reach, Table, Viod};

/// Rounds without any answer before a request fails.
const TRIES: u32 = 3;

/// Messages of one request in flight at once (60 KiB each at most).
const WINDOW: usize = 4;

/// The longest wait for an answer, as a multiple of the table's timeout.
const MAX_BACKOFF: u32 = 8;

/// Receive buffer of a request's socket: room for the answers to a 1 MiB
/// READ (17 datagrams of 60 KiB) with the kernel's per-packet overhead.
const RECEIVE_BUFFER: i32 = 4 << 20;

/// Stale-instance refusals of one message before the request fails.
const MAX_STALE: u32 = 3;

/// Direct-read notices handled before one direct read.
const MAX_NOTICES: usize = 16;

static EPOCH: Atomic<u64> = Atomic::new(0);
static NEXT_SEQ: Atomic<u64> = Atomic::new(1);
/// Write verifier changes asked of nfsd (`stats`: write_verifier_resets).
static VERIFIER_RESETS: Atomic<u64> = Atomic::new(0);

/// The number of write verifier changes since the module was loaded.
pub(crate) fn verifier_resets() -> u64 {
    VERIFIER_RESETS.load(Relaxed)
}

/// Changes nfsd's write verifier in `net`: clients send again every write
/// not committed yet (an iod that may have lost some came back).
pub(crate) fn reset_write_verifier(net: &NetRef) {
    VERIFIER_RESETS.add(1u64, Relaxed);
    net.reset_write_verifier();
}

/// A new request id: this module load's epoch (random, chosen on first
/// use, never 0) and the next sequence number.
fn next_request_id() -> RequestId {
    let mut epoch = EPOCH.load(Relaxed);
    if epoch == 0 {
        let mut fresh = random_u64();
        while fresh == 0 {
            fresh = random_u64();
        }
        epoch = match EPOCH.cmpxchg(0, fresh, Relaxed) {
            Ok(_) => fresh,
            Err(current) => current,
        };
    }
    RequestId {
        epoch,
        seq: NEXT_SEQ.fetch_add(1u64, Relaxed),
    }
}

/// An error status from an iod, as an errno.
fn status_error(s: Status) -> Error {
    match s {
        Status::Ok => EIO,
        Status::NoSpace => ENOSPC,
        Status::TooBig => EFBIG,
        Status::Busy => EAGAIN,
        _ => EIO,
    }
}

/// One message of a request, kept for retransmission.
struct Outgoing {
    id: RequestId,
    iod: Arc<Iod>,
    /// The viod whose members may answer (a replica chain), or `None`
    /// when only `iod` may.
    chain_of: Option<u32>,
    /// Applied once by the iods: re-sent as is; others get a new id.
    mutating: bool,
    /// A READ: sent again only while its iod may be read from.
    read: bool,
    stale: u32,
    datagram: KVVec<u8>,
    done: bool,
    /// Where a READ's data goes in the caller's buffer.
    dest: usize,
    /// Data bytes the message moves (for the iod's counters).
    bytes: usize,
    sent: bool,
    sent_at: Instant<Monotonic>,
}

/// The messages of one nfsd request and the socket they travel on.
struct Exchange<'t> {
    table: &'t Table,
    keys: Keys,
    socket: UdpSocket,
    port: u16,
    out: KVec<Outgoing>,
    timeout_ms: u32,
    /// A message goes to an iod known to be silent (see [`Reach`]): the
    /// request gives up after one silent round.
    probe: bool,
}

/// Direct reads refused with NFS3ERR_JUKEBOX, as sent to an iod to deliver
/// (`stats`: direct_reads_refused).
static DIRECT_READS_REFUSED: Atomic<u64> = Atomic::new(0);

pub(crate) fn direct_reads_refused() -> u64 {
    DIRECT_READS_REFUSED.load(Relaxed)
}

/// Identity mismatches seen (`stats`: identity_mismatches).
static IDENTITY_MISMATCHES: Atomic<u64> = Atomic::new(0);

pub(crate) fn identity_mismatches() -> u64 {
    IDENTITY_MISMATCHES.load(Relaxed)
}

/// What an answer's instance taught.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Learned {
    /// Its iod's instance (known already, or learned now).
    Instance,
    /// Nothing: an older answer, a replay, or not our iod's.
    Nothing,
    /// Its iod serves another data directory than the table's (see
    /// [`wire::identity_of`]): the member is taken down.
    Foreign,
}

/// Checks the data-directory identity `instance` carries against the one
/// the table holds for `iod` (learning it from the first answer) and
/// gives [`Learned::Foreign`] for another one: a wiped, swapped or
/// mis-addressed iod holds none of its viod's data, and would read as
/// holes. The member goes down (no read, no write reaches it) until it is
/// re-synced or the admin accepts the new identity.
fn check_identity(table: &Table, iod: &Iod, instance: u64, addressed: bool) -> Learned {
    let identity = wire::identity_of(instance);
    let known = iod.identity.load(Relaxed);
    // Identities belong to an address: every member at it (one iod may
    // serve several viods) is told alike.
    let at_addr = || {
        table
            .viods
            .iter()
            .flat_map(|v| v.members.iter())
            .filter(|m| m.addr == iod.addr)
    };
    if known == identity {
        // Its own directory again (a disk mounted back): it stays down
        // until set up, but may serve layouts then.
        for m in at_addr().filter(|m| m.foreign.load(Relaxed) != 0) {
            m.foreign.store(0, Relaxed);
        }
        return Learned::Instance;
    }
    // The directory of another iod of the table: a replay from a forged
    // source (identities outlive restarts), not this iod's. Nor is an
    // answer we did not address to this iod (a chain member's, a direct
    // read's notice) trusted to teach or to take it down: its source
    // address is not authenticated.
    let members = table.viods.iter().flat_map(|v| v.members.iter());
    if !addressed
        || members
            .filter(|m| m.addr != iod.addr)
            .any(|m| m.identity.load(Relaxed) == identity)
    {
        return Learned::Nothing;
    }
    if known == wire::UNKNOWN_IDENTITY {
        for m in at_addr() {
            let _ = m
                .identity
                .cmpxchg(wire::UNKNOWN_IDENTITY, identity, Relaxed);
        }
        if iod.identity.load(Relaxed) == identity {
            pr_info!(
                "nfsp: iod {:?}: data directory {:08x} (its first answer)\n",
                iod.addr,
                identity
            );
            return Learned::Instance;
        }
    }
    IDENTITY_MISMATCHES.add(1u64, Relaxed);
    if iod.foreign.load(Relaxed) != identity {
        pr_warn!(
            "nfsp: iod {:?} answers as data directory {:08x}, the table holds {:08x} \
             (wiped, replaced or at the wrong address): taken down until re-synced or \
             accepted (iodctl accept-identity)\n",
            iod.addr,
            identity,
            iod.identity.load(Relaxed)
        );
    }
    for m in at_addr() {
        m.foreign.store(identity, Relaxed);
        m.take_down();
    }
    Learned::Foreign
}

/// Learns the instance an authenticated answer from `from` to our request
/// `id` carries: only from an answer to one of ours, and never from an
/// answer older than the one learned last (a late answer of an earlier
/// instance, or a replay, must not undo what a newer one taught). A new
/// instance of a known iod restarted, maybe with its machine or its disk:
/// writes it acknowledged but never committed may be lost, so nfsd's write
/// verifier changes and clients send them again. The source address is
/// not authenticated: an instance another iod of the table has (instances
/// are random per iod process) is a replay from a forged source, ignored.
fn learn_instance(
    table: &Table,
    from: &SocketAddr,
    id: RequestId,
    instance: u64,
    addressed: bool,
) -> Learned {
    if id.epoch != EPOCH.load(Relaxed) {
        return Learned::Nothing;
    }
    let others = table.viods.iter().flat_map(|v| v.members.iter());
    if others
        .filter(|m| m.addr != *from)
        .any(|m| m.instance.load(Relaxed) == instance)
    {
        return Learned::Nothing;
    }
    let Some(iod) = table.iod(from) else {
        return Learned::Nothing;
    };
    let mut seen = iod.instance_seq.load(Relaxed);
    if id.seq <= seen {
        return Learned::Nothing;
    }
    match check_identity(table, iod, instance, addressed) {
        Learned::Instance => {}
        other => return other,
    }
    while id.seq > seen {
        match iod.instance_seq.cmpxchg(seen, id.seq, Relaxed) {
            Ok(_) => {
                let was = iod.instance.xchg(instance, Relaxed);
                if was != 0 && was != instance {
                    if let Some(anchor) = &table.anchor {
                        reset_write_verifier(&anchor.net);
                    }
                }
                return Learned::Instance;
            }
            Err(now) => seen = now,
        }
    }
    Learned::Nothing
}

/// The head of a write to `viod` and the chain members after it, with
/// their instances.
fn chain_members<'v>(table: &Table, viod: &'v Viod) -> Result<(&'v Arc<Iod>, KVec<ChainMember>)> {
    // Only an answer addressed to an iod teaches its identity, and a
    // chain member answers a message sent to the head: one not known
    // yet is PINGed first.
    let mut unknown = KVec::new();
    for m in viod.writers().skip(1) {
        if m.identity.load(Relaxed) == wire::UNKNOWN_IDENTITY {
            unknown.push(m, GFP_KERNEL)?;
        }
    }
    if !unknown.is_empty() {
        learn_instances(table, &unknown)?;
    }
    let mut writers = viod.writers();
    // No member takes writes: the client retries until one does.
    let head = writers.next().ok_or(EAGAIN)?;
    let mut chain = KVec::new();
    for m in writers {
        chain.push(
            ChainMember {
                addr: m.addr,
                instance: m.instance.load(Relaxed),
            },
            GFP_KERNEL,
        )?;
    }
    Ok((head, chain))
}

impl<'t> Exchange<'t> {
    fn new(table: &'t Table, like: &SocketAddr) -> Result<Self> {
        let anchor = table.anchor.as_ref().ok_or(EAGAIN)?;
        // No keys loaded yet: nothing may be sent; the client retries.
        let keys = table.keys.ok_or(EAGAIN)?;
        let socket = UdpSocket::new(&anchor.net, like)?;
        socket.set_recv_buffer(RECEIVE_BUFFER);
        let port = socket.local_port(like)?;
        Ok(Exchange {
            table,
            keys,
            socket,
            port,
            out: KVec::new(),
            timeout_ms: table.timeout_ms,
            probe: false,
        })
    }

    /// Re-issues message `i` with a new request id and the instances
    /// known now.
    fn restamp(&mut self, i: usize) -> Result {
        let table = self.table;
        let keys = self.keys;
        let o = self.out.get_mut(i).ok_or(EINVAL)?;
        let id = next_request_id();
        let mut fresh = KVVec::from_elem(0u8, o.datagram.len(), GFP_KERNEL)?;
        let instance_of = |a: &SocketAddr| table.instance_of(a);
        let n = wire::restamp(
            &keys,
            &o.datagram,
            id,
            &o.iod.addr,
            &instance_of,
            &mut fresh,
        )
        .map_err(|_| EINVAL)?;
        fresh.truncate(n);
        o.datagram = fresh;
        o.id = id;
        Ok(())
    }

    /// Where `iod` must send its answer.
    fn origin(&self, iod: &Iod) -> SocketAddr {
        SocketAddr::new(iod.origin_ip, self.port)
    }

    /// Queues `body` for `iod` (answered by a member of viod `chain_of`
    /// for a replica chain); it moves `bytes` of data, `carried` of them in
    /// the message itself.
    fn add(
        &mut self,
        iod: &Arc<Iod>,
        chain_of: Option<u32>,
        dest: usize,
        bytes: usize,
        carried: usize,
        body: Body<'_>,
    ) -> Result {
        // Asked once per iod and request: a probe's other messages (a
        // piece larger than a datagram) go with it.
        let known = self.out.iter().any(|o| o.iod.addr == iod.addr);
        match if known { Reach::Normal } else { iod.reach() } {
            Reach::Normal => {}
            Reach::Probe => self.probe = true,
            // Known to be silent: the client retries later; no nfsd thread
            // waits out the rounds again.
            Reach::FailFast => {
                iod.timeouts.add(1u64, Relaxed);
                return Err(EAGAIN);
            }
        }
        let id = next_request_id();
        let mutating = !matches!(body, Body::Read(_) | Body::Ping | Body::Length(_));
        let read = matches!(body, Body::Read(_));
        // Room for the data and the largest header (routes, reply header).
        let room = (carried + 4096).min(wire::MAX_DATAGRAM);
        let mut datagram = KVVec::from_elem(0u8, room, GFP_KERNEL)?;
        let len = Message::new(id, iod.instance.load(Relaxed), body)
            .seal(&self.keys, &mut datagram)
            .map_err(|_| EINVAL)?;
        datagram.truncate(len);
        self.out.push(
            Outgoing {
                id,
                iod: iod.clone(),
                chain_of,
                mutating,
                read,
                stale: 0,
                datagram,
                done: false,
                dest,
                bytes,
                sent: false,
                sent_at: Instant::now(),
            },
            GFP_KERNEL,
        )?;
        Ok(())
    }

    fn send(&mut self, i: usize) {
        if let Some(o) = self.out.get_mut(i) {
            o.sent = true;
            o.sent_at = Instant::now();
            if self.socket.send_to(&o.datagram, &o.iod.addr).is_err() {
                o.iod.errors.add(1u64, Relaxed);
            }
        }
    }

    /// Sends everything, a window at a time, and waits for every answer;
    /// `on_answer` checks one (given the message's destination offset and
    /// data bytes).
    fn run(&mut self, mut on_answer: impl FnMut(usize, usize, &Body<'_>) -> Result) -> Result {
        let total = self.out.len();
        let mut next = 0;
        let mut in_flight = 0;
        let mut answered = 0;
        let mut silent_rounds = 0;
        let mut wait_ms = self.timeout_ms;
        let mut buf = KVVec::from_elem(0u8, wire::MAX_DATAGRAM, GFP_KERNEL)?;
        // A round ends at a deadline: datagrams that are not answers (strays,
        // forgeries, late copies) never extend the wait.
        let mut round_start = Instant::<Monotonic>::now();
        while answered < total {
            while next < total && in_flight < WINDOW {
                self.send(next);
                next += 1;
                in_flight += 1;
            }
            let waited = u32::try_from(round_start.elapsed().as_millis()).unwrap_or(u32::MAX);
            let received = if waited >= wait_ms {
                Err(EAGAIN)
            } else {
                self.socket.set_recv_timeout_ms(wait_ms - waited);
                self.socket.recv_from(&mut buf, false)
            };
            let n = match received {
                Ok(n) => n,
                Err(e) if e == EAGAIN => {
                    round_start = Instant::now();
                    silent_rounds += 1;
                    // A probe of a silent iod waits one round only.
                    if silent_rounds >= TRIES || self.probe {
                        for o in self.out.iter().filter(|o| o.sent && !o.done) {
                            o.iod.timeouts.add(1u64, Relaxed);
                            o.iod.went_silent();
                        }
                        return Err(EAGAIN);
                    }
                    wait_ms = wait_ms
                        .saturating_mul(2)
                        .min(self.timeout_ms.saturating_mul(MAX_BACKOFF));
                    for i in 0..next {
                        let Some(o) = self.out.get(i) else { continue };
                        if o.done {
                            continue;
                        }
                        // A member taken out meanwhile (it missed writes, or
                        // serves another directory) is not read from: the
                        // client retries, from another one.
                        if o.read && o.iod.state() != IodState::Up {
                            return Err(EAGAIN);
                        }
                        // Iods drop copies of a read: ask again anew.
                        if !o.mutating {
                            self.restamp(i)?;
                        }
                        self.send(i);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (n, from) = n;
            let Some(datagram) = buf.get(..n) else {
                continue;
            };
            // Anything unauthenticated, undecodable or unexpected (a late
            // answer to an earlier try, garbage, a forgery) is ignored:
            // the message stays pending.
            let Ok(msg) = wire::open(&self.keys, datagram) else {
                continue;
            };
            // Only answers: a request (ours reflected, or a forwarded copy,
            // which carries our request id) is never taken for one.
            if !msg.body.msg_type().is_answer() {
                continue;
            }
            let table = self.table;
            let Some(i) = self.out.iter().position(|o| {
                o.id == msg.id
                    && o.sent
                    && !o.done
                    && (o.iod.addr == from
                        || o.chain_of.is_some_and(|v| {
                            table
                                .viod(v)
                                .is_some_and(|v| v.members.iter().any(|m| m.addr == from))
                        }))
            }) else {
                continue;
            };
            if let Some(m) = table.iod(&from) {
                m.answered();
            }
            let addressed = self.out.get(i).is_some_and(|o| o.iod.addr == from);
            if learn_instance(table, &from, msg.id, msg.instance, addressed) == Learned::Foreign {
                // Nothing it says is about this viod's data; the client
                // retries, without it.
                if let Some(o) = self.out.get_mut(i) {
                    o.iod.errors.add(1u64, Relaxed);
                }
                return Err(EAGAIN);
            }
            if let Body::Ack(a) = &msg.body {
                if a.status == Status::Stale {
                    // Not applied: send it again to the instance now known,
                    // unless it may no longer be read from (see above).
                    let o = self.out.get_mut(i).ok_or(EINVAL)?;
                    if o.read && o.iod.state() != IodState::Up {
                        return Err(EAGAIN);
                    }
                    o.stale += 1;
                    if o.stale > MAX_STALE {
                        o.iod.errors.add(1u64, Relaxed);
                        return Err(EAGAIN);
                    }
                    self.restamp(i)?;
                    self.send(i);
                    continue;
                }
            }
            let Some(o) = self.out.get_mut(i) else {
                continue;
            };
            o.done = true;
            answered += 1;
            in_flight -= 1;
            // Progress: the link is moving, start the waits afresh.
            silent_rounds = 0;
            wait_ms = self.timeout_ms;
            round_start = Instant::now();
            match on_answer(o.dest, o.bytes, &msg.body) {
                Ok(()) => {
                    let us = o.sent_at.elapsed().as_micros_ceil();
                    o.iod.record(o.bytes, Some(u64::try_from(us).unwrap_or(0)));
                }
                Err(e) => {
                    o.iod.errors.add(1u64, Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Checks an ACK for operation `op`.
fn ack(op: MsgType, body: &Body<'_>) -> Result {
    match body {
        Body::Ack(a) if a.op == op && a.status == Status::Ok => Ok(()),
        Body::Ack(a) if a.op == op => Err(status_error(a.status)),
        _ => Err(EIO),
    }
}

/// Learns the instance (and the data-directory identity) of every iod of
/// `iods` not known yet (PING; once per iod and module load or iod
/// restart).
pub(crate) fn learn_instances(table: &Table, iods: &[&Arc<Iod>]) -> Result {
    let unknown = |i: &Iod| {
        table.instance_of(&i.addr) == 0 || i.identity.load(Relaxed) == wire::UNKNOWN_IDENTITY
    };
    let Some(first) = iods.iter().find(|i| unknown(i)) else {
        return Ok(());
    };
    let mut ex = Exchange::new(table, &first.addr)?;
    for (k, iod) in iods.iter().enumerate() {
        let seen_before = iods.iter().take(k).any(|o| o.addr == iod.addr);
        if unknown(iod) && !seen_before {
            ex.add(iod, None, 0, 0, 0, Body::Ping)?;
        }
    }
    ex.run(|_, _, body| match body {
        Body::Pong(_) => Ok(()),
        _ => Err(EIO),
    })
}

/// A file's data on the iods.
pub(crate) struct FileIo<'a> {
    pub(crate) table: &'a Table,
    pub(crate) key: FileKey,
    pub(crate) layout: StripeLayout,
}

impl FileIo<'_> {
    fn viod(&self, id: u32) -> Result<&Viod> {
        // A file striped over a viod that is gone cannot be served now;
        // the client retries (the admin may add it back).
        self.table.viod(id).ok_or(EAGAIN)
    }

    fn any_iod(&self) -> Result<SocketAddr> {
        self.table
            .viods
            .first()
            .and_then(|v| v.members.first())
            .map(|m| m.addr)
            .ok_or(EAGAIN)
    }

    /// Reads `buf.len()` bytes at `pos` through the module (relay).
    pub(crate) fn read(&self, pos: u64, buf: &mut [u8]) -> Result {
        let mut ex = Exchange::new(self.table, &self.any_iod()?)?;
        let mut dest = 0usize;
        for piece in self
            .layout
            .pieces(pos, buf.len() as u64)
            .map_err(|_| EINVAL)?
        {
            let viod = self.viod(piece.viod)?;
            let mut done = 0u64;
            while done < piece.len {
                let len = (piece.len - done).min(wire::MAX_DATA_PER_MSG as u64);
                let iod = viod.reader().ok_or(EAGAIN)?;
                let origin = ex.origin(iod);
                let body = Body::Read(wire::Read {
                    key: self.key,
                    local_offset: piece.local_offset + done,
                    len: len as u32,
                    routes: List::Items(&[]),
                    reply: ReplySpec::Relay { origin },
                    gathered: &[],
                });
                ex.add(iod, None, dest, len as usize, 0, body)?;
                dest += len as usize;
                done += len;
            }
        }
        ex.run(|at, want, body| match body {
            Body::ReadReply(r) if r.status == Status::Ok && r.data.len() == want => {
                let dst = buf.get_mut(at..at + r.data.len()).ok_or(EIO)?;
                dst.copy_from_slice(r.data);
                Ok(())
            }
            Body::ReadReply(r) => Err(status_error(r.status)),
            Body::Ack(a) => Err(status_error(a.status)),
            _ => Err(EIO),
        })
    }

    /// Picks up what iods told the origin of earlier direct reads: a
    /// stale-instance refusal teaches the new instance (the client's
    /// retransmission then succeeds).
    fn drain_notices(&self, keys: &Keys) -> Result {
        let anchor = self.table.anchor.as_ref().ok_or(EAGAIN)?;
        let mut buf = [0u8; 256];
        for _ in 0..MAX_NOTICES {
            let (n, from) = match anchor.notices.recv_from(&mut buf, true) {
                Ok(got) => got,
                // Larger than any notice: not one; look at the next.
                Err(e) if e == EMSGSIZE => continue,
                Err(_) => break,
            };
            let Some(datagram) = buf.get(..n) else {
                continue;
            };
            let Ok(msg) = wire::open(keys, datagram) else {
                continue;
            };
            // Only an iod's refusal of one of our direct reads counts.
            let Body::Ack(a) = msg.body else { continue };
            if a.op != MsgType::Read || a.status == Status::Ok {
                continue;
            }
            if a.status == Status::Stale {
                learn_instance(self.table, &from, msg.id, msg.instance, false);
            } else if msg.id.epoch == EPOCH.load(Relaxed) {
                if let Some(iod) = self.table.iod(&from) {
                    iod.errors.add(1u64, Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Has the iods answer a UDP READ of `count` bytes at `pos` themselves:
    /// the first iod reads its part and forwards along the routing list,
    /// the last one sends nfsd's reply header and the data to the client.
    pub(crate) fn read_direct(&self, pos: u64, count: usize, reply: &DirectReply<'_>) -> Result {
        if count > wire::MAX_DATA_PER_MSG {
            return Err(EINVAL);
        }
        let keys = self.table.keys.ok_or(EAGAIN)?;
        let anchor = self.table.anchor.as_ref().ok_or(EAGAIN)?;
        self.drain_notices(&keys)?;
        let Some(iods) = self.direct_route(pos, count)? else {
            return self.refuse_direct(&keys, anchor, reply);
        };
        let (iod, local_offset, len) = iods.first().ok_or(EINVAL)?;
        let mut hops: KVec<Hop> = KVec::new();
        for (iod, local_offset, len) in iods.iter().skip(1) {
            hops.push(
                Hop {
                    addr: iod.addr,
                    local_offset: *local_offset,
                    len: *len,
                    instance: iod.instance.load(Relaxed),
                },
                GFP_KERNEL,
            )?;
        }
        if !iod.addr.is_ipv4() {
            // The notice socket is IPv4.
            return Err(EAFNOSUPPORT);
        }
        let body = Body::Read(wire::Read {
            key: self.key,
            local_offset: *local_offset,
            len: *len,
            routes: List::Items(&hops),
            reply: ReplySpec::Direct {
                origin: SocketAddr::new(iod.origin_ip, anchor.notices_port),
                client: reply.client,
                source: reply.server,
                header: reply.header,
                pad: true,
            },
            gathered: &[],
        });
        let mut datagram = KVVec::from_elem(0u8, 4096, GFP_KERNEL)?;
        let n = Message::new(next_request_id(), iod.instance.load(Relaxed), body)
            .seal(&keys, &mut datagram)
            .map_err(|_| EINVAL)?;
        let datagram = datagram.get(..n).ok_or(EINVAL)?;
        // Fire and forget: a lost reply is retransmitted by the client.
        anchor.notices.send_to(datagram, &iod.addr)?;
        iod.record(count, None);
        Ok(())
    }

    /// The member of each piece's viod that serves a direct read (their
    /// instances known), with its local offset and length; `None` when a
    /// viod has no member up.
    fn direct_route(&self, pos: u64, count: usize) -> Result<Option<KVec<(Arc<Iod>, u64, u32)>>> {
        let mut iods: KVec<(Arc<Iod>, u64, u32)> = KVec::new();
        for piece in self.layout.pieces(pos, count as u64).map_err(|_| EINVAL)? {
            let Some(iod) = self.viod(piece.viod)?.reader() else {
                return Ok(None);
            };
            iods.push(
                (iod.clone(), piece.local_offset, piece.len as u32),
                GFP_KERNEL,
            )?;
        }
        // A read at or past the end: no data, only the header, which any
        // iod can send.
        if iods.is_empty() {
            let viod = self.viod(self.layout.first_viod)?;
            let Some(iod) = viod.reader().or_else(|| self.messenger()) else {
                return Ok(None);
            };
            iods.push((iod.clone(), 0, 0), GFP_KERNEL)?;
        }
        {
            let mut refs: KVec<&Arc<Iod>> = KVec::new();
            for (iod, _, _) in iods.iter() {
                refs.push(iod, GFP_KERNEL)?;
            }
            learn_instances(self.table, &refs)?;
        }
        Ok(Some(iods))
    }

    /// An iod that can send a reply for the meta-server now: up, answering,
    /// its instance known, reached over IPv4 (the notice socket's).
    fn messenger(&self) -> Option<&Arc<Iod>> {
        self.table
            .viods
            .iter()
            .flat_map(|v| v.members.iter())
            .find(|m| {
                m.state() == IodState::Up
                    && !m.silent()
                    && m.instance.load(Relaxed) != 0
                    && m.addr.is_ipv4()
            })
    }

    /// A viod of a direct read has no member up: another iod sends the
    /// client NFS3ERR_JUKEBOX from the meta-server's address (a zero-length
    /// read with that reply as its header), so the client waits and tries
    /// again instead of counting timeouts. Without such an iod, or for a
    /// reply nfsd did not make with an empty AUTH_NONE verifier, nothing
    /// answers: the client retransmits. Returns EAGAIN.
    fn refuse_direct(&self, keys: &Keys, anchor: &Anchor, reply: &DirectReply<'_>) -> Result {
        let iod = self.messenger().ok_or(EAGAIN)?;
        let mut header = [0u8; nfs3_error::READ_ERROR_REPLY_LEN];
        let n =
            nfs3_error::encode_read_error(reply.header, nfs3_error::NFS3ERR_JUKEBOX, &mut header)
                .map_err(|_| EAGAIN)?;
        let body = Body::Read(wire::Read {
            key: self.key,
            local_offset: 0,
            len: 0,
            routes: List::Items(&[]),
            reply: ReplySpec::Direct {
                origin: SocketAddr::new(iod.origin_ip, anchor.notices_port),
                client: reply.client,
                source: reply.server,
                header: header.get(..n).ok_or(EINVAL)?,
                pad: true,
            },
            gathered: &[],
        });
        let mut datagram = [0u8; 512];
        let n = Message::new(next_request_id(), iod.instance.load(Relaxed), body)
            .seal(keys, &mut datagram)
            .map_err(|_| EINVAL)?;
        anchor
            .notices
            .send_to(datagram.get(..n).ok_or(EINVAL)?, &iod.addr)?;
        DIRECT_READS_REFUSED.add(1u64, Relaxed);
        Err(EAGAIN)
    }

    /// Writes `data` at `pos` on every member of the viods concerned (a
    /// replica chain per viod), returning once all have acknowledged.
    pub(crate) fn write(&self, pos: u64, data: &[u8]) -> Result {
        let mut ex = Exchange::new(self.table, &self.any_iod()?)?;
        let mut at = 0usize;
        for piece in self
            .layout
            .pieces(pos, data.len() as u64)
            .map_err(|_| EINVAL)?
        {
            let viod = self.viod(piece.viod)?;
            let (head, chain) = chain_members(self.table, viod)?;
            let origin = ex.origin(head);
            let mut done = 0u64;
            while done < piece.len {
                let len = (piece.len - done).min(wire::MAX_DATA_PER_MSG as u64) as usize;
                let chunk = data.get(at..at + len).ok_or(EINVAL)?;
                let body = Body::Write(wire::Write {
                    key: self.key,
                    local_offset: piece.local_offset + done,
                    chain: Chain {
                        origin,
                        members: List::Items(&chain),
                    },
                    data: chunk,
                });
                ex.add(head, Some(viod.id), at, len, len, body)?;
                at += len;
                done += len as u64;
            }
        }
        ex.run(|_, _, body| ack(MsgType::Write, body))
    }

    /// Sends `build`'s message (given a replica chain) to every viod of the
    /// file and waits for every chain's acknowledgement.
    fn broadcast(&self, op: MsgType, build: impl Fn(u32, Chain<'_>) -> Result<Body<'_>>) -> Result {
        let mut ex = Exchange::new(self.table, &self.any_iod()?)?;
        for v in 0..self.layout.width {
            let viod = self.viod(v)?;
            let (head, chain) = chain_members(self.table, viod)?;
            let origin = ex.origin(head);
            let body = build(
                v,
                Chain {
                    origin,
                    members: List::Items(&chain),
                },
            )?;
            ex.add(head, Some(viod.id), 0, 0, 0, body)?;
        }
        ex.run(|_, _, body| ack(op, body))
    }

    /// Makes the file's data durable on every iod holding it.
    pub(crate) fn commit(&self) -> Result {
        self.broadcast(MsgType::Commit, |_, chain| {
            Ok(Body::Commit(wire::Commit {
                key: self.key,
                chain,
            }))
        })
    }

    /// Cuts (or extends with zeros) the file's data to the real size
    /// `size`; the iods refuse data-server filehandles of a layout epoch
    /// below `layout_epoch` from then on.
    pub(crate) fn truncate(&self, size: u64, layout_epoch: u32) -> Result {
        self.set_local_lengths(size, false, layout_epoch)
    }

    /// The file grew to `size` (a write past its end, or clients' writes
    /// through layouts): every iod's local file is made at least as long
    /// as `size` asks of it, none is cut. Then an iod tells the end of the
    /// file exactly, as a pNFS data server must (a READ there is short,
    /// with EOF).
    pub(crate) fn grow(&self, size: u64) -> Result {
        self.set_local_lengths(size, true, 0)
    }

    /// The size the iods' local files imply
    /// ([`StripeLayout::size_from_local_len`]): what clients wrote through
    /// pNFS layouts, whatever they told the meta-server.
    pub(crate) fn size_on_iods(&self) -> Result<u64> {
        let mut ex = Exchange::new(self.table, &self.any_iod()?)?;
        for v in 0..self.layout.width {
            let viod = self.viod(v)?;
            let iod = viod.reader().ok_or(EAGAIN)?;
            let slot = usize::try_from(v).map_err(|_| EINVAL)?;
            ex.add(iod, None, slot, 0, 0, Body::Length(self.key))?;
        }
        let mut size = 0u64;
        ex.run(|slot, _, body| {
            let len = match body {
                Body::Ack(a) if a.op == MsgType::Length && a.status == Status::Ok => a.value,
                Body::Ack(a) if a.op == MsgType::Length => return Err(status_error(a.status)),
                _ => return Err(EIO),
            };
            let v = u32::try_from(slot).map_err(|_| EINVAL)?;
            let end = self.layout.size_from_local_len(v, len).map_err(|_| EIO)?;
            size = size.max(end);
            Ok(())
        })?;
        Ok(size)
    }

    /// Fences the data-server filehandles of a layout epoch below
    /// `layout_epoch` on every iod of the file, which has size `size`
    /// (its data stays as it is).
    pub(crate) fn fence(&self, size: u64, layout_epoch: u32) -> Result {
        self.set_local_lengths(size, true, layout_epoch)
    }

    fn set_local_lengths(&self, size: u64, extend_only: bool, layout_epoch: u32) -> Result {
        self.broadcast(MsgType::Truncate, |v, chain| {
            let new_len = self.layout.local_len(v, size).map_err(|_| EINVAL)?;
            Ok(Body::Truncate(wire::Truncate {
                key: self.key,
                new_len,
                extend_only,
                layout_epoch,
                chain,
            }))
        })
    }
}
